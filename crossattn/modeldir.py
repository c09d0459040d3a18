"""The model directory (this module owns its format: reading, writing, checking), and the
text conventions every inference engine follows around the network (normalisation,
sentence splitting); the decoding ones (output-length budget, length penalty) are
decoding.py's, the optional alignment head's file align_head.py's.

A model directory holds::

    config.json        {"model": ModelConfig, "decoding": {...}, "files": {name: sha256}}
    model.safetensors  weights (tied output stored once)
    tokenizer.model    the joint SentencePiece model, or (an imported Marian model,
                       config.json "tokenizer": "shared-vocabulary") source.spm, target.spm
                       and vocab.json: separate source and target models, one vocabulary

Reading one never unpickles anything: safetensors + JSON only, and every file is
checked against the checksum recorded in config.json. Nothing here imports torch at
module level, so the CTranslate2 Translator (translator.py) starts without it; only
``save_model_dir``/``load_model_dir``, which build the torch network, import it.
"""

from __future__ import annotations

import hashlib
import json
import os
from functools import partial
from pathlib import Path

from .atomic import atomic_dir, crash_point, write_json_atomic, write_text_atomic
from .config import ModelConfig
from .decoding import DEFAULT_DECODING
from .errors import CrossattnError
from .glossary import Glossary, restore_terms
from .text import (clean_text, dollars_in_signs, dollars_in_words, is_shouted, protect_spans, restore_spans,
                   sentence_case, split_sentences)
from .tokenizer import SharedVocabTokenizer, Tokenizer

PRETRAINED_ROOT = Path(__file__).parent / "pretrained"
PRETRAINED_DIR = PRETRAINED_ROOT / "en-fr"  # the default model
WEIGHTS, TOKENIZER, CONFIG = "model.safetensors", "tokenizer.model", "config.json"
SHARED_VOCABULARY = "shared-vocabulary"  # config.json "tokenizer": the three files below
SOURCE_SPM, TARGET_SPM, VOCAB = "source.spm", "target.spm", "vocab.json"


class ModelDirError(CrossattnError, ValueError):
    """A model directory that is missing, incomplete, corrupt or inconsistent."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def shipped_directions() -> list[str]:
    """The language pairs of the models shipped in the package, e.g. ["en-fr", "fr-en"]."""
    return sorted(p.name for p in PRETRAINED_ROOT.iterdir() if (p / CONFIG).is_file())


def is_shipped(root: Path) -> bool:
    """Whether ``root`` is one of the models shipped inside the package (which no command modifies)."""
    return root.resolve().is_relative_to(PRETRAINED_ROOT.resolve())


def resolve_model_dir(path: str | Path | None) -> Path:
    """A shipped model by direction ("en-fr", "fr-en"), a model directory, or a training
    output directory holding ``model/``; None is the default en-fr model."""
    if path is None:
        return PRETRAINED_DIR
    p = Path(path)
    if not p.exists() and isinstance(path, str) and "/" not in path and "-" in path:
        if (PRETRAINED_ROOT / path / CONFIG).is_file():
            return PRETRAINED_ROOT / path
        raise ModelDirError(f"no shipped model for {path}; shipped: {', '.join(shipped_directions())}")
    if not p.exists():
        raise ModelDirError(f"model directory not found: {p}")
    if not (p / CONFIG).exists() and (p / "model" / CONFIG).exists():
        return p / "model"
    return p


CACHE_ENV = "CROSSATTN_CACHE"


def cache_root() -> Path:
    """Where derived files live (converted models, verification stamps):
    $CROSSATTN_CACHE, else ~/.cache/crossattn."""
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path.home() / ".cache" / "crossattn"


def verify_files(root: Path, digests: dict[str, str]) -> None:
    """Every file matches the SHA-256 config.json records. A file already verified with
    the same size and modification time is not hashed again (a stamp in the cache): a
    cold start then costs no 40 MB read; any change to a file means hashing it again."""
    stamp_file = cache_root() / "verified" / (hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:24] + ".json")
    try:
        stamps = json.loads(stamp_file.read_text())
    except (OSError, ValueError):
        stamps = {}
    fresh = {}
    for name, digest in digests.items():
        st = (root / name).stat()
        key = [st.st_size, st.st_mtime_ns, digest]
        if stamps.get(name) != key:
            if sha256_file(root / name) != digest:
                raise ModelDirError(f"{root / name}: checksum mismatch (file corrupt or replaced)")
        fresh[name] = key
    if fresh != stamps:
        try:  # a cache that cannot be written only costs the next start its hashing
            stamp_file.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(stamp_file, fresh)
        except OSError:
            pass


def tokenizer_files(config: dict) -> tuple[str, ...]:
    """The tokenizer's files in a model directory whose config.json is ``config``."""
    kind = config.get("tokenizer", "joint")
    if kind == SHARED_VOCABULARY:
        return SOURCE_SPM, TARGET_SPM, VOCAB
    if kind != "joint":
        raise ModelDirError(f"unknown tokenizer kind {kind!r} in config.json (joint or {SHARED_VOCABULARY})")
    return (TOKENIZER,)


def load_tokenizer(root: Path, config: dict) -> Tokenizer:
    files = tokenizer_files(config)
    if len(files) == 1:
        return Tokenizer(root / files[0])
    return SharedVocabTokenizer.from_files(*(root / name for name in files))


def read_model_dir(path: str | Path | None, verify: bool = True) -> tuple[Path, dict, ModelConfig, Tokenizer]:
    """Check a model directory and load what is not weights.

    Returns ``(directory, config.json contents, model config, tokenizer)``; the caller
    loads ``directory / WEIGHTS`` into its own engine.
    """
    root = resolve_model_dir(path)
    for name in (CONFIG, WEIGHTS):
        if not (root / name).is_file():
            raise ModelDirError(f"{root}: missing {name}")
    try:
        config = json.loads((root / CONFIG).read_text())
        model_cfg = ModelConfig.from_dict(config["model"])
    except (ValueError, KeyError, TypeError) as e:
        raise ModelDirError(f"{root / CONFIG}: invalid config ({e})") from None
    for name in tokenizer_files(config):
        if not (root / name).is_file():
            raise ModelDirError(f"{root}: missing {name}")
    if verify:
        verify_files(root, config.get("files", {}))
    try:
        tokenizer = load_tokenizer(root, config)
    except Exception as e:  # sentencepiece raises plain RuntimeError/OSError on garbage
        raise ModelDirError(f"{root}: cannot load tokenizer ({e})") from None
    if tokenizer.vocab_size != model_cfg.vocab_size:
        raise ModelDirError(f"{root}: tokenizer has {tokenizer.vocab_size} pieces but the model expects {model_cfg.vocab_size}")
    if isinstance(tokenizer, SharedVocabTokenizer) and (tokenizer.pad_id, tokenizer.eos_id) != (model_cfg.pad_id, model_cfg.eos_id):
        raise ModelDirError(f"{root}: vocab.json's <pad>/</s> ids {tokenizer.pad_id}/{tokenizer.eos_id} are not the "
                            f"model's pad_id/eos_id {model_cfg.pad_id}/{model_cfg.eos_id}")
    return root, config, model_cfg, tokenizer


def count_parameters(root: Path) -> int:
    """Parameters stored in a model directory's weights (read from the safetensors header)."""
    import struct
    from math import prod

    with open(root / WEIGHTS, "rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(size))
    return sum(prod(v["shape"]) for k, v in header.items() if k != "__metadata__")


# -- text in, text out: the same for every engine -----------------------------------------
normalize = clean_text  # what training saw (text.py is the one normalizer)


def capitalized(tokenizer: Tokenizer, word: str) -> bool:
    """Is ``word`` (lower case) written with a capital, as far as the vocabulary knows? Yes
    when its capitalized form takes fewer pieces ("▁Monday" against "▁mon" "day"): the
    tokenizer learnt it whole because the training text wrote it so (names, days, "la
    Chambre" in the Hansards). Measured on shouted dev sentences (300 each of newstest2012
    and hansard/dev, shipped models, 2026-12-06): BLEU against the references, lower-cased,
    en-fr 8.62 -> 9.01 and 19.94 -> 21.12, fr-en 8.51 -> 8.60 and 20.67 -> 21.49 (the same
    sentences as written: 9.20, 23.27, 9.45, 23.19): bench/shouted.py, bench/README.md."""
    return len(tokenizer.pieces(" " + word.capitalize())) < len(tokenizer.pieces(" " + word))


def _parts(tokenizer: Tokenizer, text: str, max_tokens: int, split: bool,
           recase: bool) -> list[tuple[list[int], bool]]:
    """(token ids, written in capitals) of each part of ``text`` translated on its own."""
    text = tokenizer.fold_unknown(text)

    def encode(unit: str) -> tuple[list[int], bool]:
        shouted = recase and is_shouted(unit)
        return tokenizer.encode(sentence_case(unit, partial(capitalized, tokenizer)) if shouted else unit), shouted

    if not split:
        ids, shouted = encode(text)
        if len(ids) + 1 <= max_tokens:
            return [(ids, shouted)] if ids else []
    step = max_tokens - 1
    parts: list[tuple[list[int], bool]] = []
    for sentence in split_sentences(text):
        ids, shouted = encode(sentence)
        parts.extend((ids[i : i + step], shouted) for i in range(0, len(ids), step))
    return [p for p in parts if p[0]]


def sentence_chunks(tokenizer: Tokenizer, text: str, max_tokens: int, split: bool = True) -> list[list[int]]:
    """Token ids of the parts of ``text`` that are translated one by one: its sentences
    (``split``), or the whole text when it fits; a sentence longer than the model's limit
    is cut by length. ``max_tokens`` counts the EOS the engine appends; empty text gives
    no parts. Characters the vocabulary lacks are folded (Tokenizer.fold_unknown), as
    for translation, but nothing else is swapped or recased: what the attention views show."""
    return [ids for ids, _ in _parts(tokenizer, text, max_tokens, split, recase=False)]


class SourceText:
    """One input text as every engine translates it: normalized; URLs and e-mail addresses
    swapped for placeholders the model copies (text.protect_spans); characters the
    vocabulary lacks folded to known ones (Tokenizer.fold_unknown), and amounts in dollars
    in words if it lacks "$" (text.dollars_in_words); cut into parts as
    sentence_chunks does, a sentence written in capitals put in sentence case
    (text.is_shouted). ``finish`` makes the one output line from the parts' translations:
    in order, shouted sentences in capitals again, "$" written as ``target_language`` writes
    it, the URLs and addresses put back. With a ``glossary``, its terms are placeholders
    too, and ``finish`` writes their translations in their place (glossary.py)."""

    def __init__(self, tokenizer: Tokenizer, text: str, max_tokens: int, split: bool = True,
                 target_language: str | None = None, glossary: Glossary | None = None):
        protected, self.spans = protect_spans(normalize(text))
        # glossary terms become placeholders too (glossary.py), numbered after the URLs'
        protected, self.terms = glossary.protect(protected) if glossary else (protected, [])
        self.protected = protected  # what the model reads: finish finds placeholders it mangled in a run
        self.amounts = 0
        if "$" not in tokenizer.known_characters:
            protected, self.amounts = dollars_in_words(protected)
        self.target_language = target_language
        parts = _parts(tokenizer, protected, max_tokens, split, recase=True)
        self.ids = [ids for ids, _ in parts]
        self.shouted = [shouted for _, shouted in parts]

    def finish(self, translations: list[str]) -> str:
        # whitespace normalized whatever bytes the model writes (byte fallback can spell "\\n")
        terms, restored = self.terms, []
        for t in translations:  # terms first: a sentence in capitals writes them in capitals too
            t, terms = restore_terms(t, terms)
            restored.append(t)
        if terms and restored:  # a placeholder the model left out: its term is appended, nothing is lost
            restored[-1] = " ".join([restored[-1]] + [span.target for span in terms])
        text = " ".join(t.upper() if shouted else t for t, shouted in zip(restored, self.shouted))
        text = dollars_in_signs(" ".join(text.split()), self.target_language or "", self.amounts)
        return restore_spans(text, self.spans, self.protected)


def target_language(config: dict) -> str | None:
    """The language a model directory translates into ("fr"), when its config.json says."""
    return (config.get("languages") or {}).get("target")


# -- writing and loading the torch network ------------------------------------------------
def save_model_dir(model, tokenizer: Tokenizer, out: str | Path, decoding: dict | None = None,
                   dtype=None, extra: dict | None = None) -> None:
    """Write an inference-ready model directory (checksums included) for a
    ``Seq2SeqTransformer``; ``dtype`` (e.g. torch.bfloat16) sets how weights are stored.

    Written whole under a temporary name and swapped into place (atomic.replace_dir): after
    a crash ``out`` is the previous directory or the new one (where the system cannot swap
    directories atomically, possibly absent mid-swap), never a mixture."""
    from .model import save_model

    with atomic_dir(out) as tmp:
        save_model(model, tmp / WEIGHTS, dtype)
        crash_point("model-dir-write", 1)
        if isinstance(tokenizer, SharedVocabTokenizer):
            kind = {"tokenizer": SHARED_VOCABULARY}
            tokenizer.save_files(tmp / SOURCE_SPM, tmp / TARGET_SPM, tmp / VOCAB)
        else:
            kind = {}
            tokenizer.save(tmp / TOKENIZER)
        config = {
            "model": model.config.to_dict(),
            **kind,
            "decoding": dict(decoding or DEFAULT_DECODING),
            "files": {name: sha256_file(tmp / name) for name in (WEIGHTS, *tokenizer_files(kind))},
            **(extra or {}),
        }
        write_text_atomic(tmp / CONFIG, json.dumps(config, indent=2) + "\n")


def load_model_dir(path: str | Path | None, verify: bool = True):
    """``(Seq2SeqTransformer in eval mode, Tokenizer, config.json contents)``."""
    from .model import Seq2SeqTransformer, load_weights

    root, config, model_cfg, tokenizer = read_model_dir(path, verify)
    model = Seq2SeqTransformer.empty(model_cfg)
    try:
        load_weights(model, root / WEIGHTS)
    except ValueError as e:
        raise ModelDirError(f"{root / WEIGHTS}: {e}") from None
    except Exception as e:  # safetensors raises its own error types on truncated files
        raise ModelDirError(f"{root / WEIGHTS}: cannot read weights ({e})") from None
    return model.eval(), tokenizer, config
