"""Export a model directory to CTranslate2, a C++ inference engine for Transformers.

CTranslate2 builds a model from a *spec*: a tree of named weights with a few flags.
Our layers map onto its ``TransformerSpec`` one to one:

    ours                                   CTranslate2
    embed.tokens (shared, tied output)     encoder/decoder embeddings, decoder projection
    final_logits_bias (Marian's)           decoder projection bias
    * sqrt(d_model) + sinusoidal table     scale_embeddings, position_encodings (our table)
    Sublayer.norm (pre-LN or post-LN)      <sublayer>.layer_norm with pre_norm=True/False
    encoder_norm / decoder_norm            encoder/decoder .layer_norm (final)
    self_attn q, k, v projections          self_attention.linear[0] = fused [q; k; v]
    cross_attn q | k, v projections        attention.linear[0] = q, linear[1] = fused [k; v]
    out_proj, feed_forward.up / down       linear[-1], ffn.linear_0 / linear_1

The vocabulary is the SentencePiece pieces in id order (0-3 are <pad> <unk> <s> </s>),
the decoder starts from <s> (our BOS id 2) and stops at </s> (EOS id 3), and the
source gets </s> appended automatically, as our Translator does.

    crossattn export --format ctranslate2 --out en-fr-ct2 [--model DIR] [--quantization int8]
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from .atomic import fsync_dir, fsync_file, replace_dir
from .errors import CrossattnError

if TYPE_CHECKING:
    from .model import Seq2SeqTransformer

README = """\
# {name}: crossattn model exported to CTranslate2

Exported by `crossattn export` from {source} ({params:,} parameters, weights {weights}).
Needs only `pip install ctranslate2 sentencepiece`:

```python
import ctranslate2, sentencepiece as spm

sp = spm.SentencePieceProcessor(model_file="{name}/tokenizer.model")
translator = ctranslate2.Translator("{name}", device="cpu")  # compute_type="int8" for speed
texts = ["Hello, how are you?"]
# </s> is appended to each source and <s> starts the decoder automatically
batch = [sp.encode(t, out_type=str) for t in texts]
results = translator.translate_batch(batch, beam_size={beam}, length_penalty={alpha},
                                     max_input_length=0, max_decoding_length={max_len})
print([sp.decode(r.hypotheses[0]) for r in results])
```

With float32 weights this gives the same tokens as crossattn's own torch search, greedy
and beam (both divide beam scores by `length ** length_penalty`, EOS counted); crossattn
also limits each translation to 1.5 x its source length + 10 tokens and translates each
sentence of a text separately. int8 trades a little accuracy for speed.
Inputs are limited to {max_len} tokens (the position table of the model). Normalise input
text as crossattn does (Unicode NFC, single spaces) for identical results.
"""


def _linear(spec, layer: torch.nn.Linear) -> None:
    spec.weight = layer.weight.detach().float().numpy()
    if layer.bias is not None:
        spec.bias = layer.bias.detach().float().numpy()


def _fused(spec, layers: list[torch.nn.Linear]) -> None:
    """CTranslate2 computes q, k, v (or k, v) with one matmul over stacked weights."""
    spec.weight = torch.cat([l.weight.detach().float() for l in layers]).numpy()
    if layers[0].bias is not None:
        spec.bias = torch.cat([l.bias.detach().float() for l in layers]).numpy()


def _norm(spec, norm: torch.nn.LayerNorm) -> None:
    spec.gamma = norm.weight.detach().float().numpy()
    spec.beta = norm.bias.detach().float().numpy()


def _attention(spec, attn, norm: torch.nn.LayerNorm, self_attention: bool) -> None:
    _norm(spec.layer_norm, norm)
    if self_attention:
        _fused(spec.linear[0], [attn.q_proj, attn.k_proj, attn.v_proj])
    else:
        _linear(spec.linear[0], attn.q_proj)
        _fused(spec.linear[1], [attn.k_proj, attn.v_proj])
    _linear(spec.linear[-1], attn.out_proj)


def _ffn(spec, ff, norm: torch.nn.LayerNorm) -> None:
    _norm(spec.layer_norm, norm)
    _linear(spec.linear_0, ff.up)
    _linear(spec.linear_1, ff.down)


CT2_ACTIVATIONS = {"relu": "RELU", "gelu": "GELU", "swish": "SWISH"}  # ModelConfig.activation -> Activation


def build_spec(model: "Seq2SeqTransformer", pieces: list[str]):
    """A ``ctranslate2.specs.TransformerSpec`` holding the weights of ``model``.

    A model whose decoder starts from <pad> (an imported Marian model) is exported as
    CTranslate2's own Marian converter does it: <pad>, the last piece, leaves the
    vocabulary (so it is never written) and the decoder starts from a zero embedding,
    which is what <pad>'s all-zero row gives."""
    from ctranslate2.specs import common_spec, transformer_spec

    cfg = model.config
    activation = getattr(common_spec.Activation, CT2_ACTIVATIONS[cfg.activation])
    common = dict(num_heads=cfg.n_heads, pre_norm=cfg.norm_first, activation=activation)
    encoder = transformer_spec.TransformerEncoderSpec(cfg.encoder_layers, **common)
    decoder = transformer_spec.TransformerDecoderSpec(cfg.decoder_layers, **common)
    spec = transformer_spec.TransformerSpec(encoder, decoder)

    embedding = model.embed.tokens.weight.detach().float().numpy()
    starts_from_pad = cfg.bos_id == cfg.pad_id
    if starts_from_pad:
        if cfg.pad_id != cfg.vocab_size - 1:
            raise ExportError(f"the decoder starts from <pad> (id {cfg.pad_id}), which must be the last piece "
                              f"({cfg.vocab_size - 1}) for CTranslate2")
        if embedding[cfg.pad_id].any():
            raise ExportError("the decoder starts from <pad>, whose embedding must be all zeros for CTranslate2")
    kept = cfg.vocab_size - 1 if starts_from_pad else cfg.vocab_size
    # our own table (interleaved or halved sin/cos, or learned), not CTranslate2's default layout
    positions = model.embed.positions.detach().float().numpy()
    for side in (encoder, decoder):
        side.scale_embeddings = cfg.scale_embedding  # * sqrt(d_model), as Embeddings does
        side.position_encodings.encodings = positions
    encoder.embeddings[0].weight = embedding[:kept]
    decoder.embeddings.weight = embedding[:kept]
    decoder.start_from_zero_embedding = starts_from_pad
    _linear(decoder.projection, model.output)  # tied: the same array, stored once by CT2
    decoder.projection.weight = decoder.projection.weight[:kept]
    if cfg.final_logits_bias:
        decoder.projection.bias = model.final_logits_bias.detach().float().numpy()[:kept]

    for layer_spec, layer in zip(encoder.layer, model.encoder_layers):
        _attention(layer_spec.self_attention, layer.self_attn, layer.attn_sub.norm, self_attention=True)
        _ffn(layer_spec.ffn, layer.feed_forward, layer.ff_sub.norm)
    for layer_spec, layer in zip(decoder.layer, model.decoder_layers):
        _attention(layer_spec.self_attention, layer.self_attn, layer.self_sub.norm, self_attention=True)
        _attention(layer_spec.attention, layer.cross_attn, layer.cross_sub.norm, self_attention=False)
        _ffn(layer_spec.ffn, layer.feed_forward, layer.ff_sub.norm)
    if cfg.norm_first:
        _norm(encoder.layer_norm, model.encoder_norm)
        _norm(decoder.layer_norm, model.decoder_norm)

    special = {cfg.pad_id: "<pad>", cfg.eos_id: "</s>"} | ({} if starts_from_pad else {cfg.bos_id: "<s>"})
    wrong = {i: pieces[i] for i, name in special.items() if pieces[i] != name}
    if wrong:
        raise ValueError(f"tokenizer special pieces {wrong} do not match CTranslate2's <pad>/<s>/</s>")
    spec.config.unk_token, spec.config.eos_token = pieces[1], "</s>"
    # starting from a zero embedding, the start token's name only has to be in the vocabulary
    spec.config.decoder_start_token = pieces[1] if starts_from_pad else "<s>"
    spec.config.add_source_eos = True  # our sources end with EOS, never start with BOS
    spec.config.layer_norm_epsilon = model.encoder_layers[0].attn_sub.norm.eps
    spec.register_source_vocabulary(pieces[:kept])
    spec.register_target_vocabulary(pieces[:kept])
    return spec


MARKER = "crossattn-export.json"  # marks a directory this exporter wrote (and may replace)


class ExportError(CrossattnError):
    """An export that cannot be written where it was asked to go."""


def check_output_dir(out: Path, force: bool) -> None:
    """``out`` may be new, empty, or (with ``force``) an earlier export of ours, never
    anything else: ``--out . --force`` must not delete a directory tree."""
    if not out.exists():
        return
    if not out.is_dir():
        raise ExportError(f"{out} exists and is not a directory")
    if not any(out.iterdir()):
        return
    if not force:
        raise ExportError(f"{out} already exists and is not empty (use --force to replace an earlier export)")
    if not (out / MARKER).is_file():
        raise ExportError(f"{out} is not a directory written by crossattn export (no {MARKER}); refusing to replace it")


def export_ctranslate2(model_dir: str | Path | None, out: str | Path, quantization: str | None = None,
                       force: bool = False) -> Path:
    """Write a CTranslate2 model directory (+ tokenizer.model, README.md) to ``out``."""
    try:
        import ctranslate2  # noqa: F401
    except ImportError:
        raise ExportError("ctranslate2 is not installed: pip install ctranslate2") from None
    from .decoding import model_decoding
    from .modeldir import TOKENIZER, load_model_dir, resolve_model_dir, tokenizer_files

    out = Path(out)
    check_output_dir(out, force)
    model, tokenizer, config = load_model_dir(model_dir)
    pieces = [tokenizer.id_to_piece(i) for i in range(tokenizer.vocab_size)]
    spec = build_spec(model, pieces)
    spec.validate()
    spec.optimize(quantization=quantization)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        spec.save(str(tmp))
        for name in tokenizer_files(config):  # a joint model is tokenizer.model, as the README says
            shutil.copyfile(resolve_model_dir(model_dir) / name, tmp / ("tokenizer.model" if name == TOKENIZER else name))
        decoding = model_decoding(config.get("decoding"))
        (tmp / "README.md").write_text(README.format(
            name=out.name, source=f"`{model_dir}`" if model_dir else "the shipped en-fr model",
            params=model.num_parameters(), weights=quantization or "float32", beam=decoding["beam"],
            alpha=decoding["alpha"], max_len=model.config.max_positions - 1))
        (tmp / MARKER).write_text(json.dumps({"format": "ctranslate2", "source": str(model_dir or "en-fr"),
                                               "files": config.get("files", {}), "decoding": decoding}, indent=2))
        replace_dir(tmp, out)  # the old export goes only once the new one is whole, in place
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


ARGOS_README = """\
# crossattn {source_name} → {target_name} for Argos Translate

Exported by `crossattn export --format argos` from {source} ({params:,} parameters):
a CTranslate2 model (`model/`), its SentencePiece vocabulary (`sentencepiece.model`) and
a rule-based spaCy sentence splitter (`spacy/`, a blank pipeline that Argos completes with
spaCy's `sentencizer`), so nothing is downloaded.

    import argostranslate.package, argostranslate.translate
    argostranslate.package.install_from_path("{file}")
    argostranslate.translate.translate("Hello, how are you?", "{source_code}", "{target_code}")

Set `ARGOS_CHUNK_TYPE=SPACY` so that Argos splits sentences with the packaged spaCy
pipeline; its default splitter (MiniSBD) would download a model on first use.
{tokenizer_note}"""
MARIAN_NOTE = """
The model was imported from a Marian checkpoint, which cuts sources with `source.spm` and
joins translations with `target.spm` over one vocabulary. `sentencepiece.model` is
`source.spm`: Argos cuts sources with it, and also joins the translation's pieces with it,
which `crossattn export` checked gives every piece of the vocabulary the text `target.spm`
gives it.
"""
LANGUAGE_NAMES = {"en": "English", "fr": "French"}


def export_argos(model_dir: str | Path | None, out: str | Path, quantization: str | None = "int8",
                 force: bool = False) -> Path:
    """Write an Argos Translate package (``.argosmodel``, a zip archive) to ``out``."""
    import tempfile
    import zipfile

    from .modeldir import SHARED_VOCABULARY, read_model_dir, resolve_model_dir

    out = Path(out)
    if out.suffix != ".argosmodel":
        raise ExportError(f"{out}: an Argos package file must end in .argosmodel")
    if out.exists() and not force:
        raise ExportError(f"{out} already exists (use --force to replace it)")
    if out.exists() and not zipfile.is_zipfile(out):
        raise ExportError(f"{out} is not an Argos package; refusing to replace it")
    root, config, model_cfg, tokenizer = read_model_dir(model_dir)
    shared = config.get("tokenizer", "joint") == SHARED_VOCABULARY
    if shared:
        check_argos_joins_like_target(root, tokenizer)
    langs = config.get("languages") or dict(zip(("source", "target"), root.name.split("-", 1)))
    if set(langs) != {"source", "target"}:
        raise ExportError(f"{root}: config.json does not say its languages (\"languages\": {{\"source\", \"target\"}})")
    src, tgt = langs["source"], langs["target"]
    name = f"translate-{src}_{tgt}-crossattn"
    with tempfile.TemporaryDirectory(dir=out.parent if out.parent.exists() else None) as tmp:
        pkg = Path(tmp) / name
        pkg.mkdir()
        export_ctranslate2(model_dir, pkg / "model", quantization)
        for extra in ("README.md", MARKER):
            (pkg / "model" / extra).unlink()
        if shared:  # the source model cuts sources and (checked above) joins translations
            from .modeldir import SOURCE_SPM, TARGET_SPM, VOCAB

            os.replace(pkg / "model" / SOURCE_SPM, pkg / "sentencepiece.model")
            for name in (TARGET_SPM, VOCAB):  # CTranslate2 reads its own vocabulary file
                (pkg / "model" / name).unlink()
        else:
            os.replace(pkg / "model" / "tokenizer.model", pkg / "sentencepiece.model")
        write_spacy_splitter(pkg / "spacy", src)
        metadata = {"package_version": "1.0", "argos_version": "1.0", "from_code": src,
                    "from_name": LANGUAGE_NAMES.get(src, src), "to_code": tgt, "to_name": LANGUAGE_NAMES.get(tgt, tgt),
                    "type": "translate", "links": []}
        (pkg / "metadata.json").write_text(json.dumps(metadata, indent=2) + "\n")
        from .modeldir import count_parameters

        (pkg / "README.md").write_text(ARGOS_README.format(
            source_name=metadata["from_name"], target_name=metadata["to_name"], source_code=src, target_code=tgt,
            source=f"`{model_dir}`" if model_dir else f"the shipped {src}-{tgt} model",
            params=count_parameters(resolve_model_dir(model_dir)), file=out.name,
            tokenizer_note=MARIAN_NOTE if shared else ""))
        archive = Path(tmp) / out.name
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
            for path in sorted(pkg.rglob("*")):
                z.write(path, path.relative_to(tmp))
        out.parent.mkdir(parents=True, exist_ok=True)
        fsync_file(archive)
        os.replace(archive, out)  # atomic: a killed export leaves the old package or none
        fsync_dir(out.parent)
    return out


def argos_text(processor, batch: list[list[str]]) -> list[str]:
    """What Argos writes for each list of target pieces, joined by ``processor`` (its
    SentencePieceTokenizer.decode and apply_packaged_translation): SentencePiece's join,
    each U+2581 left by a piece the model lacks made a space, and one leading space
    dropped. (Argos also makes "_" a space, whichever model joins.)"""
    texts = [text.replace("\u2581", " ") for text in processor.decode_pieces(batch)]
    return [text[1:] if text.startswith(" ") else text for text in texts]


def check_argos_joins_like_target(root: Path, tokenizer) -> None:
    """An Argos package holds one SentencePiece model, which both cuts the source and joins
    the translation's pieces. A Marian model has two over one vocabulary: the package gets
    the source model, which is right for the source, and right for the translation only if
    it joins every piece of the vocabulary as the target model does. SentencePiece joins
    piece by piece (a piece a model lacks is kept as it is, "\u2581" and all), the first
    piece aside, so each piece is checked alone and after itself. Refuses, naming a piece,
    where the two would differ."""
    from .modeldir import SOURCE_SPM, TARGET_SPM
    from .tokenizer import load_processor

    source = load_processor((root / SOURCE_SPM).read_bytes(), str(root / SOURCE_SPM))
    target = load_processor((root / TARGET_SPM).read_bytes(), str(root / TARGET_SPM))
    # </s> and <pad> are never written; an <unk> Argos replaces with a source piece
    special = {tokenizer.eos_id, tokenizer.pad_id, tokenizer.unk_id}
    pieces = [tokenizer.id_to_piece(i) for i in range(tokenizer.vocab_size) if i not in special]
    for batch in ([[p] for p in pieces], [[p, p] for p in pieces]):
        for seq, got, want in zip(batch, argos_text(source, batch), argos_text(target, batch)):
            if got != want:
                raise ExportError(
                    f"{root}: an Argos package holds one SentencePiece model; {SOURCE_SPM} (which must cut the "
                    f"source) joins the piece {seq[-1]!r} as {got!r}, {TARGET_SPM} as {want!r} "
                    "(export --format ctranslate2 instead)")


def write_spacy_splitter(path: Path, lang: str) -> None:
    """A blank spaCy pipeline for ``lang``: Argos adds the rule-based sentencizer to it."""
    try:
        import spacy
    except ImportError:
        raise ExportError("the Argos package needs spaCy for its sentence splitter: pip install spacy") from None
    spacy.blank(lang).to_disk(path)
