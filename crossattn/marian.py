"""Import a Marian / OPUS-MT checkpoint (Hugging Face format) as a crossattn model directory.

A Hugging Face Marian folder holds ``config.json``, ``model.safetensors`` (or
``pytorch_model.bin``), ``source.spm``, ``target.spm`` and ``vocab.json``. Its network is
ours with other options (ModelConfig): post-LN layers, the activation its config names
(swish for OPUS-MT), Marian's sinusoidal table (sines, then cosines), a final logits bias,
one embedding shared by encoder, decoder and output, and a decoder that starts from <pad>.
The weights are renamed onto our modules one to one and written with modeldir.py, so every
command takes the result with ``--model``.

Nothing is unpickled: ``pytorch_model.bin`` is read with ``torch.load(weights_only=True)``,
which refuses a pickle that would run code. What we cannot represent (another
architecture, untied embeddings, separate vocabularies, ...) is refused with one line
naming the config field.

    crossattn import ./opus-mt-en-fr --out ~/models/en-fr-opus [--from en --to fr]
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from .config import ModelConfig
from .errors import CrossattnError
from .model import Seq2SeqTransformer, sinusoidal_table
from .modeldir import save_model_dir
from .tokenizer import SharedVocabTokenizer, TokenizerError

ACTIVATIONS = {"swish": "swish", "silu": "swish", "relu": "relu", "gelu": "gelu"}  # HF name -> ModelConfig's
# config.json fields that must have this value (or be absent) for our network to be Marian's
REQUIRED = {
    "share_encoder_decoder_embeddings": True,  # one embedding table for source and target
    "tie_word_embeddings": True,  # the output projection is that table
    "separate_vocabs": False,
    "static_position_embeddings": True,
    "normalize_before": False,  # post-LN (Marian's); pre-LN checkpoints are not Marian's layout
    "normalize_embedding": False,  # no LayerNorm on the embeddings
    "add_final_layer_norm": False,
    "add_bias_logits": False,
    "scale_attention": True,
}
SUBLAYERS = {  # Hugging Face's module names -> ours, per layer
    "encoder": {"self_attn.": "self_attn.", "self_attn_layer_norm.": "attn_sub.norm.", "fc1.": "feed_forward.up.",
                "fc2.": "feed_forward.down.", "final_layer_norm.": "ff_sub.norm."},
    "decoder": {"self_attn.": "self_attn.", "self_attn_layer_norm.": "self_sub.norm.", "encoder_attn.": "cross_attn.",
                "encoder_attn_layer_norm.": "cross_sub.norm.", "fc1.": "feed_forward.up.",
                "fc2.": "feed_forward.down.", "final_layer_norm.": "ff_sub.norm."},
}
HUB_NAME = re.compile(r"^[\w.-]+/[\w.-]+$")  # "Helsinki-NLP/opus-mt-en-fr"


class MarianImportError(CrossattnError, ValueError):
    """A checkpoint we cannot import: missing, damaged, or a variant we cannot represent."""


def locate_checkpoint(source: str | Path) -> Path:
    """A local folder as is; a Hugging Face name ("Helsinki-NLP/opus-mt-en-fr") downloaded
    first, with huggingface_hub (its cache is reused; HF_HUB_OFFLINE=1 reads only the cache)."""
    path = Path(source)
    if path.is_dir():
        return path
    if path.exists():
        raise MarianImportError(f"{path}: not a directory (give the checkpoint's folder)")
    if not HUB_NAME.match(str(source)):
        raise MarianImportError(f"{source}: no such checkpoint folder")
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise MarianImportError(f"{source}: no such folder, and downloading it needs huggingface_hub "
                                "(pip install huggingface_hub)") from None
    patterns = ["config.json", "tokenizer_config.json", "generation_config.json", "source.spm", "target.spm",
                "vocab.json", "model.safetensors", "pytorch_model.bin"]
    try:
        return Path(snapshot_download(str(source), allow_patterns=patterns))
    except Exception as e:  # hub errors: offline, unknown repository, HTTP failures
        reason = (str(e).strip().splitlines() or [""])[0]
        raise MarianImportError(f"{source}: cannot download ({type(e).__name__}: {reason})") from None


def read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MarianImportError(f"{path.parent}: missing {path.name}") from None
    except (OSError, ValueError) as e:
        raise MarianImportError(f"{path}: not readable JSON ({e})") from None
    if not isinstance(data, dict):
        raise MarianImportError(f"{path}: not a JSON object")
    return data


def model_config(hf: dict) -> ModelConfig:
    """Our ModelConfig for a Hugging Face MarianConfig (config.json), or a one-line refusal."""
    if hf.get("model_type") != "marian":
        raise MarianImportError(f"config.json: model_type is {hf.get('model_type')!r}, only 'marian' can be imported")
    for field, value in REQUIRED.items():
        if field in hf and hf[field] != value:
            raise MarianImportError(f"config.json: {field} = {hf[field]!r} is not supported (only {value!r})")
    if hf.get("encoder_attention_heads") != hf.get("decoder_attention_heads"):
        raise MarianImportError("config.json: encoder_attention_heads and decoder_attention_heads differ")
    if hf.get("encoder_ffn_dim") != hf.get("decoder_ffn_dim"):
        raise MarianImportError("config.json: encoder_ffn_dim and decoder_ffn_dim differ")
    vocab = hf.get("vocab_size")
    if hf.get("decoder_vocab_size") not in (None, vocab):
        raise MarianImportError(f"config.json: decoder_vocab_size = {hf['decoder_vocab_size']} differs from vocab_size "
                                f"= {vocab} (separate vocabularies)")
    activation = ACTIVATIONS.get(hf.get("activation_function", "swish"))
    if activation is None:
        raise MarianImportError(f"config.json: activation_function = {hf.get('activation_function')!r} is not "
                                f"supported ({', '.join(ACTIVATIONS)})")
    pad = hf.get("pad_token_id")
    if hf.get("decoder_start_token_id", pad) != pad:
        raise MarianImportError(f"config.json: decoder_start_token_id = {hf['decoder_start_token_id']} is not the "
                                f"pad_token_id {pad} (Marian's decoder starts from <pad>)")
    try:
        return ModelConfig(
            vocab_size=vocab, d_model=hf["d_model"], n_heads=hf["encoder_attention_heads"], d_ff=hf["encoder_ffn_dim"],
            encoder_layers=hf["encoder_layers"], decoder_layers=hf["decoder_layers"], dropout=hf.get("dropout", 0.1),
            attention_dropout=hf.get("attention_dropout", 0.0), activation=activation, norm_first=False,
            positions="sinusoidal_halves", max_positions=hf.get("max_position_embeddings", 512),
            scale_embedding=bool(hf.get("scale_embedding", False)), tie_output=True, final_logits_bias=True,
            pad_id=pad, bos_id=pad, eos_id=hf.get("eos_token_id", 0))
    except KeyError as e:
        raise MarianImportError(f"config.json: no {e.args[0]} field") from None
    except (TypeError, ValueError) as e:
        raise MarianImportError(f"config.json: {e}") from None


def read_weights(folder: Path) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors: model.safetensors, else pytorch_model.bin loaded with
    ``weights_only=True`` (tensors and plain containers only; nothing runs)."""
    if (folder / "model.safetensors").is_file():
        from safetensors.torch import load_file

        try:
            return load_file(str(folder / "model.safetensors"))
        except Exception as e:  # safetensors raises its own errors on damaged files
            reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise MarianImportError(f"{folder / 'model.safetensors'}: cannot read weights ({reason})") from None
    path = folder / "pytorch_model.bin"
    if not path.is_file():
        raise MarianImportError(f"{folder}: missing model.safetensors (or pytorch_model.bin)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # UnpicklingError for a pickle that would run code, RuntimeError for damage
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if "weights_only" in str(e) or "Unsupported global" in str(e):
            reason = "it holds more than tensors (a pickle that would run code), refused"
        raise MarianImportError(f"{path}: cannot load with weights_only=True: {reason}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise MarianImportError(f"{path}: not a state dict of tensors")
    return state


def renamed_weights(state: dict[str, torch.Tensor], cfg: ModelConfig) -> dict[str, torch.Tensor]:
    """Hugging Face's names -> ours (float32); refuses untied embeddings and unknown tensors."""
    state = {k.removeprefix("model.") if k.startswith("model.") else k: v for k, v in state.items()}
    embedding = state.pop("shared.weight", None)
    for key in ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight", "lm_head.weight"):
        tensor = state.pop(key, None)
        if tensor is None:
            continue
        if embedding is None:
            embedding = tensor
        elif tensor.shape != embedding.shape or not torch.equal(tensor, embedding):
            raise MarianImportError(f"weights: {key} differs from the shared embedding (untied embeddings are not "
                                    "supported)")
    if embedding is None:
        raise MarianImportError("weights: no shared embedding (model.shared.weight)")
    ours = {"embed.tokens.weight": embedding}
    bias = state.pop("final_logits_bias", None)
    ours["final_logits_bias"] = torch.zeros(cfg.vocab_size) if bias is None else bias.reshape(-1)
    for side in ("encoder", "decoder"):
        table = state.pop(f"{side}.embed_positions.weight", None)
        if table is not None:  # the table is computed, not stored: it must be the one we compute
            expected = sinusoidal_table(table.size(0), table.size(1), halves=True)
            if table.shape != expected.shape or not torch.allclose(table.float(), expected, atol=1e-5):
                raise MarianImportError(f"weights: {side}.embed_positions is not Marian's sinusoidal table")
    pattern = re.compile(r"^(encoder|decoder)\.layers\.(\d+)\.(.+)$")
    for key, tensor in state.items():
        m = pattern.match(key)
        rest = m and next(((hf, our) for hf, our in SUBLAYERS[m.group(1)].items() if m.group(3).startswith(hf)), None)
        if not rest:
            raise MarianImportError(f"weights: {key} has no place in a Marian network we can represent")
        side, index, (hf, our) = m.group(1), m.group(2), rest
        ours[f"{side}_layers.{index}.{our}{m.group(3)[len(hf):]}"] = tensor
    return {k: v.float() for k, v in ours.items()}


def languages(folder: Path, hf: dict, source: str | None, target: str | None, name: str = "") -> dict[str, str]:
    """--from/--to, else tokenizer_config.json's source_lang/target_lang, else the
    checkpoint's name (opus-mt-en-fr: ``name`` as given, the config's, the folder's)."""
    found: dict[str, str] = {}
    tokenizer_config = folder / "tokenizer_config.json"
    if tokenizer_config.is_file():
        tc = read_json(tokenizer_config)
        found = {k: tc[f"{k}_lang"] for k in ("source", "target") if isinstance(tc.get(f"{k}_lang"), str)}
    if len(found) < 2:
        for called in (name, hf.get("_name_or_path", ""), folder.name):
            m = re.search(r"opus-mt-([a-z]{2,3})-([a-z]{2,3})$", str(called))
            if m:
                found = {"source": m.group(1), "target": m.group(2)}
                break
    langs = {"source": source or found.get("source"), "target": target or found.get("target")}
    missing = [k for k, v in langs.items() if not v]
    if missing:
        raise MarianImportError(f"{folder}: the checkpoint does not name its {' and '.join(missing)} language: "
                                "give --from and --to")
    return langs


def decoding_defaults(folder: Path, hf: dict) -> dict:
    """The checkpoint's own beam size and length penalty (generation_config.json or
    config.json), where it names them."""
    gen = read_json(folder / "generation_config.json") if (folder / "generation_config.json").is_file() else {}
    out = {}
    beam = gen.get("num_beams", hf.get("num_beams"))
    alpha = gen.get("length_penalty", hf.get("length_penalty"))
    if isinstance(beam, int) and beam >= 1:
        out["beam"] = beam
    if isinstance(alpha, (int, float)):
        out["alpha"] = float(alpha)
    return out


def import_marian(source: str | Path, out: str | Path, source_lang: str | None = None,
                  target_lang: str | None = None) -> Path:
    """Write ``out``, a crossattn model directory holding the Marian checkpoint ``source``
    (a folder, or a Hugging Face name when huggingface_hub can fetch it)."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise MarianImportError(f"{out} already exists and is not an empty directory")
    folder = locate_checkpoint(source)
    hf = read_json(folder / "config.json")
    cfg = model_config(hf)
    langs = languages(folder, hf, source_lang, target_lang, str(source))
    for name in ("source.spm", "target.spm", "vocab.json"):
        if not (folder / name).is_file():
            raise MarianImportError(f"{folder}: missing {name}")
    try:
        tokenizer = SharedVocabTokenizer.from_files(folder / "source.spm", folder / "target.spm", folder / "vocab.json")
    except TokenizerError as e:
        raise MarianImportError(str(e)) from None
    if tokenizer.vocab_size != cfg.vocab_size:
        raise MarianImportError(f"vocab.json has {tokenizer.vocab_size} pieces, config.json's vocab_size is {cfg.vocab_size}")
    if (tokenizer.pad_id, tokenizer.eos_id) != (cfg.pad_id, cfg.eos_id):
        raise MarianImportError(f"config.json: pad_token_id/eos_token_id {cfg.pad_id}/{cfg.eos_id} are not vocab.json's "
                                f"<pad>/</s> ({tokenizer.pad_id}/{tokenizer.eos_id})")
    weights = renamed_weights(read_weights(folder), cfg)
    model = Seq2SeqTransformer.empty(cfg)
    expected = {k: v for k, v in model.state_dict().items() if k != "output.weight"}
    missing, extra = sorted(set(expected) - set(weights)), sorted(set(weights) - set(expected))
    if missing or extra:
        raise MarianImportError(f"weights do not match config.json: missing {missing[:3]}, unexpected {extra[:3]}")
    for key, tensor in weights.items():
        if tensor.shape != expected[key].shape:
            raise MarianImportError(f"weights: {key} has shape {tuple(tensor.shape)}, config.json implies "
                                    f"{tuple(expected[key].shape)}")
    model.load_state_dict(weights, strict=False)
    save_model_dir(model.eval(), tokenizer, out, decoding=decoding_defaults(folder, hf) or None,
                   extra={"languages": langs, "imported_from": {"format": "marian", "source": str(source)}})
    return out
