"""The commands beyond train/translate/evaluate: ``attend``, ``align``, ``align-head``,
``align-eval``, ``explain``, ``serve`` and ``export``. Command-line layer, like cli.py
(cli_common.py holds what the two share): the library modules they call know nothing of
argparse or exit codes. cli.py imports this module only to build the full parser.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from .align_head import (AlignmentHead, check_new_dir, load_alignment_head, make_examples, save_alignment_head,
                         train_alignment_head)
from .align import (CHUNK, DEFAULT, HEAD_THRESHOLD_BOTH, HEAD_THRESHOLD_ONE, HEAD_WEIGHT, RULES, AlignmentModel,
                    Method, align, align_pairs_with_heads, score, sweep, translation_links, word_attention)
from .alignment_text import format_links, read_links, read_links_file, read_token_pairs
from .attention_views import check_index, select, word_view
from .cli_common import (CLIError, add_decoding_options, add_glossary_option, add_model_options, load_torch_translator,
                         model_arg, read_glossary, write_json, write_lines)
from .errors import InputError
from .explain import render, trace
from .export import export_argos, export_ctranslate2
from .modeldir import ModelDirError, is_shipped, load_model_dir, resolve_model_dir, shipped_directions
from .precision import head_training_dtype
from .server_api import Limits
from .visualize import describe, save_grid, save_heatmap, text_table, to_json


# -- attend ---------------------------------------------------------------------------
def cmd_attend(args) -> None:
    text = " ".join(args.text).strip()
    if not text:
        raise CLIError("nothing to translate: give a sentence")
    if args.all and not args.output:
        raise CLIError("--all draws a grid of heatmaps: give -o FILE.png")
    translator = load_torch_translator(args)
    cfg = translator.model.config
    layer = check_index(args.layer, cfg.decoder_layers, "layer")
    head = check_index(args.head, cfg.n_heads, "head")
    result = translator.translate_with_attention(text, beam=args.beam, alpha=args.alpha)
    view = word_view(result, keep_eos=not args.drop_eos, keep_pieces=args.pieces)
    aligners = attend_aligners(args, translator) if args.links else None
    links = None if aligners is None else translation_links(
        result.source_tokens, result.target_tokens, *aligners, keep_eos=not args.drop_eos, keep_pieces=args.pieces)
    caption = f"{text}  \u2192  {result.translation}"
    if args.output:
        if args.all:
            save_grid(view, args.output, None if layer is None else [layer], caption, links=links)
        else:
            save_heatmap(view, args.output, layer, head, caption, links=links)
        print(f"{result.translation}\n(wrote {args.output})")
    else:
        print(caption)
        print(f"cross-attention, {describe(layer, head, cfg.decoder_layers, cfg.n_heads)}, "
              f"{'piece' if args.pieces else 'word'} level\n")
        print(text_table(select(view.attention, layer, head), view.source, view.target, links=links))
    if args.json:
        data = to_json(result, text, word_view(result, keep_eos=not args.drop_eos), layer, head)
        if aligners is not None:  # numbered like the JSON's word view (words, never pieces)
            data["words"]["links"] = links if not args.pieces else translation_links(
                result.source_tokens, result.target_tokens, *aligners, keep_eos=not args.drop_eos)
        write_json(args.json, data)


def attend_aligners(args, translator) -> tuple[AlignmentModel, AlignmentModel | None]:
    """--links: this direction's alignment head, and the reverse direction's when there is one."""
    forward = AlignmentModel.of(translator.model, translator.tokenizer, model_arg(args))
    if forward.head is None:
        raise CLIError(f"{model_arg(args)} has no alignment head, so --links has nothing to draw "
                       "(train one with crossattn align-head)")
    return forward, reverse_alignment_model(None, forward)


def add_attend_commands(sub) -> None:
    p = sub.add_parser("attend", help="translate one sentence and show its cross-attention (text or PNG heatmap)")
    p.add_argument("text", nargs="+", help="the sentence to translate")
    p.add_argument("-o", "--output", metavar="FILE.png", help="draw a heatmap here (default: a text summary)")
    p.add_argument("--layer", type=int, help="decoder layer, 0-based (default: mean over layers)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--head", type=int, help="attention head, 0-based (default: mean over heads)")
    g.add_argument("--all", action="store_true", help="grid of every layer x head (needs -o)")
    p.add_argument("--pieces", action="store_true", help="show SentencePiece pieces instead of words")
    p.add_argument("--drop-eos", action="store_true", help="leave out the </s> row and column")
    p.add_argument("--json", metavar="FILE", help="also write tokens, raw weights and the word-level view as JSON")
    p.add_argument("--links", action="store_true",
                   help="also show the word alignment (crossattn align's, from the alignment heads): "
                        "outlined cells on the heatmap, a column in the text summary")
    add_model_options(p)
    add_decoding_options(p)
    p.set_defaults(func=cmd_attend)


# -- align, align-eval -----------------------------------------------------------------
def cmd_align(args) -> None:
    if args.method in ("auto", "head") and not args.sweep:
        forward = AlignmentModel.load(model_arg(args), args.device, args.dtype)
        if forward.head is not None:
            return align_with_heads(args, forward)
        if args.method == "head":
            raise CLIError(f"{model_arg(args)} has no alignment head (train one with crossattn align-head)")
    translator = load_torch_translator(args)
    cfg = translator.model.config
    method = Method(DEFAULT.layer if args.layer is None else _index(args.layer, "--layer"),
                    DEFAULT.head if args.head is None else _index(args.head, "--head"),
                    DEFAULT.shift if args.shift is None else args.shift == "yes",
                    args.rule or DEFAULT.rule, DEFAULT.null if args.null is None else args.null == "yes")
    check_index(method.layer, cfg.decoder_layers, "layer")
    check_index(method.head, cfg.n_heads, "head")
    pairs = read_token_pairs(args.input)
    if not pairs:
        raise CLIError(f"{args.input}: no sentence pairs")
    if args.sweep:
        gold = read_links(args.sweep)
        attention = word_attention(translator.model, translator.tokenizer, pairs, device=translator.device)
        results = sweep(attention, gold, cfg.decoder_layers, cfg.n_heads)
        write_lines(args.output, [f"{s}\t{m.describe()}" for s, m in results])
        return
    links, skipped = [], []
    for start in range(0, len(pairs), CHUNK):  # bounded memory on large corpora
        chunk = pairs[start: start + CHUNK]
        attention = word_attention(translator.model, translator.tokenizer, chunk, (method.shift,), device=translator.device)
        links += align(attention, method)
        skipped += [start + n + 1 for n, (a, (s, t)) in enumerate(zip(attention, chunk)) if a is None and s and t]
    warn_too_long(skipped)
    write_lines(args.output, [format_links(x) for x in links])


def reverse_alignment_model(reverse_dir: str | None, forward: AlignmentModel, device: str = "cpu",
                            dtype: str = "fp32") -> AlignmentModel | None:
    """The other direction's model with its alignment head: ``reverse_dir`` (an error if it
    is not one), else the shipped reverse direction if there is one; "none": none."""
    asked = reverse_dir is not None
    if not asked:
        name = f"{forward.languages[1]}-{forward.languages[0]}"
        reverse_dir = name if name in shipped_directions() else "none"
    if reverse_dir == "none":
        return None
    try:
        backward = AlignmentModel.load(reverse_dir, device, dtype)
    except ModelDirError:
        if asked:
            raise
        return None
    if backward.head is None or backward.languages != forward.languages[::-1]:
        if asked:
            raise CLIError(f"{reverse_dir}: not a {forward.languages[1]}-{forward.languages[0]} model "
                           "with an alignment head")
        return None
    return backward


def align_with_heads(args, forward: "AlignmentModel") -> None:
    """Alignment heads of both directions (when the reverse model has one), symmetrized."""
    if not 0 <= args.head_weight <= 1:
        raise CLIError(f"--head-weight {args.head_weight}: must be between 0 and 1")
    pairs = read_token_pairs(args.input)
    if not pairs:
        raise CLIError(f"{args.input}: no sentence pairs")
    backward = reverse_alignment_model(args.reverse_model, forward, args.device, args.dtype)
    start, too_long = time.perf_counter(), []

    def progress(done: int, total: int) -> None:  # large corpora take minutes: say how far it got
        print(f"crossattn: aligned {done:,} / {total:,} pairs ({done / (time.perf_counter() - start):.0f}/s)",
              file=sys.stderr)

    links = align_pairs_with_heads(pairs, forward, backward, args.threshold, args.head_weight, too_long,
                                   progress if len(pairs) > CHUNK else None)
    warn_too_long([k + 1 for k in too_long])
    write_lines(args.output, [format_links(x) for x in links])


def warn_too_long(lines: list[int]) -> None:
    """One warning naming the (1-based) input lines left unaligned because they are too long."""
    if lines:
        pairs = f"{len(lines)} pair{'s' if len(lines) > 1 else ''}"
        print(f"crossattn: warning: {pairs} too long for the model, left unaligned "
              f"(lines {', '.join(map(str, lines[:5]))}{'...' if len(lines) > 5 else ''})", file=sys.stderr)


def align_head_destination(args) -> tuple[str, Path | None]:
    """(the model to read, the new directory to write or None to modify it in place):
    ``--out`` is a new model directory; without it only a ``--model DIR`` named explicitly
    is modified, never a model shipped inside the package."""
    source = model_arg(args)
    if args.out is not None:
        check_new_dir(Path(args.out))  # said before minutes of training, not after
        return source, Path(args.out)
    if args.model is None:
        raise CLIError("give --out DIR for the model with its new head (or --model DIR to add it to that directory)")
    if is_shipped(resolve_model_dir(source)):
        raise CLIError(f"{args.model} is a model shipped with crossattn, which is never modified: give --out DIR")
    return source, None


def cmd_align_head(args) -> None:
    """Train an alignment head beside a frozen model; write it with the model to --out, or
    into the --model directory."""
    import torch

    source, out = align_head_destination(args)
    model, tokenizer, config = load_model_dir(source)
    langs = config.get("languages") or {"source": "en", "target": "fr"}
    columns = args.columns.split("-", 1)
    if sorted(columns) != sorted(langs.values()):
        raise CLIError(f"--columns {args.columns} does not match the model's languages {langs['source']}-{langs['target']}")
    root = resolve_model_dir(source)
    existing = load_alignment_head(root, config, model.config.d_model) if args.ensemble else None
    if args.ensemble and existing is None:  # said before minutes of reading and encoding the links
        raise CLIError(f"--ensemble: {root} has no alignment head to add to")
    rows = read_links_file(args.links, reverse=columns[0] != langs["source"], limit=args.pairs)
    examples = make_examples(tokenizer, rows, (langs["source"], langs["target"]), model.config.max_positions)
    if not examples:
        raise CLIError(f"{args.links}: no usable pairs")
    if args.threads:
        torch.set_num_threads(args.threads)
    if head_training_dtype(args.dtype, model.config.d_model) == "bf16":  # the network is frozen: only its forward runs
        model = model.to(torch.bfloat16)
    head = train_alignment_head(model, examples, args.steps, context=existing.context if existing else args.context,
                                d_head=existing.d_head if existing else 64,
                                log=lambda m: print(m, file=sys.stderr))
    if existing is not None:
        head = AlignmentHead.ensemble([existing, head])
    written = save_alignment_head(root, head, out)
    kind = f"an ensemble of {head.heads} alignment heads, the new one" if head.heads > 1 else "alignment head"
    print(f"{written}: {kind} trained on {len(examples):,} pairs")


def cmd_align_eval(args) -> None:
    gold, pred = read_links(args.gold), read_links(args.pred)
    if len(gold) != len(pred):
        raise InputError(f"{args.gold} has {len(gold)} lines but {args.pred} has {len(pred)}: one line per sentence pair")
    print(score(gold, [links for links, _ in pred]))


def _index(value: str, option: str) -> int | None:
    """'mean' -> None (average), else an integer index."""
    if value == "mean":
        return None
    try:
        return int(value)
    except ValueError:
        raise InputError(f"{option} must be an integer or 'mean', not {value!r}") from None


def add_align_commands(sub) -> None:
    p = sub.add_parser("align", help="word alignments (Pharaoh i-j) read off cross-attention by forced decoding")
    p.add_argument("-i", "--input", required=True, metavar="PAIRS",
                   help="TSV source<TAB>target, or SRC_FILE:TGT_FILE; words = whitespace-separated tokens")
    p.add_argument("-o", "--output", metavar="FILE", help="one line of links per pair (default: standard output)")
    show = lambda v: "mean" if v is None else v  # noqa: E731
    p.add_argument("--layer", help=f"decoder layer (0-based) or 'mean' (default: {show(DEFAULT.layer)})")
    p.add_argument("--head", help=f"head (0-based) or 'mean' (default: {show(DEFAULT.head)})")
    p.add_argument("--shift", choices=("yes", "no"), help="use the step whose input is the target word "
                   f"(default: {'yes' if DEFAULT.shift else 'no'})")
    p.add_argument("--rule", choices=RULES, help=f"argmax per target word, per source word, or both (default: {DEFAULT.rule})")
    p.add_argument("--null", choices=("yes", "no"), help="target words that attend most to </s> stay unaligned "
                   f"(default: {'yes' if DEFAULT.null else 'no'})")
    p.add_argument("--sweep", metavar="GOLD", help="instead: AER of every layer/head/shift/rule/null on GOLD, best first")
    p.add_argument("--method", choices=("auto", "head", "attention"), default="auto",
                   help="head: the model's trained alignment head(s); attention: read the translation's own "
                        "cross-attention (--layer/--head/--shift/--rule/--null); auto: head when the model has one")
    p.add_argument("--reverse-model", metavar="DIR",
                   help="the other direction's model, for symmetrized head alignments (default: the shipped "
                        "one if it has a head; 'none' for one direction)")
    p.add_argument("--threshold", type=float, help="link score (with two directions: of harmonic means) that makes "
                   f"a link (default: {HEAD_THRESHOLD_BOTH} with two directions, {HEAD_THRESHOLD_ONE} with one)")
    p.add_argument("--head-weight", type=float, default=HEAD_WEIGHT,
                   help="share of the alignment heads in the link score, the rest being the translation's own "
                        f"cross-attention of its last decoder layer; 1 = the heads alone (default: {HEAD_WEIGHT})")
    # align's own auto: links barely move with precision, speed does
    add_model_options(p, dtype_help="auto: with alignment heads, bf16 on a GPU or a CPU with fast bf16, else int8 "
                                    "(precision.alignment_dtype); the attention read-out uses fp32 on a CPU")
    p.set_defaults(func=cmd_align)

    p = sub.add_parser("align-head", help="train an alignment head for a model from word-aligned text")
    p.add_argument("--links", required=True, metavar="FILE",
                   help="source tokens<TAB>target tokens<TAB>i-j links per line (e.g. from eflomal, "
                        "bench/alignment.py)")
    p.add_argument("--columns", default="en-fr", help="languages of the file's two token columns")
    p.add_argument("--pairs", type=int, default=50_000, help="use at most this many lines")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--context", action="store_true",
                   help="the query also reads the step that predicted the word, not only the word's own step")
    p.add_argument("--ensemble", action="store_true",
                   help="keep the model's head(s) and add the new one: their weights are averaged "
                        "(heads trained on different links)")
    p.add_argument("--dtype", default="auto", choices=("auto", "fp32", "bf16"),
                   help="the frozen network's forward; auto: bf16 where this CPU measures it faster "
                        "(precision.head_training_dtype), else fp32. The head itself trains in fp32")
    p.add_argument("--threads", type=int)
    p.add_argument("--out", metavar="DIR", help="write the model with its new head here, a new directory (required "
                                                "unless --model DIR is given: then that directory gets the head)")
    add_model_options(p, engine=False)
    p.set_defaults(func=cmd_align_head)

    p = sub.add_parser("align-eval", help="alignment error rate (AER), precision and recall against gold links")
    p.add_argument("--gold", required=True, metavar="GOLD", help="i-j sure links, i?j possible links, one line per pair")
    p.add_argument("--pred", required=True, metavar="ALIGN", help="predicted links (i-j), one line per pair")
    p.set_defaults(func=cmd_align_eval)


# -- explain --------------------------------------------------------------------------
def cmd_explain(args) -> None:
    text = " ".join(args.text).strip()
    if not text:
        raise CLIError("nothing to explain: give a sentence")
    tr = trace(load_torch_translator(args), text, args.step, args.layer, args.head)
    color = sys.stdout.isatty() and "NO_COLOR" not in os.environ
    sys.stdout.write(render(tr, color) + "\n")
    if args.json:
        write_json(args.json, tr)


def add_explain_commands(sub) -> None:
    p = sub.add_parser("explain", help="trace one translation step by step with the model's real numbers")
    p.add_argument("text", nargs="+", help="the sentence to translate")
    p.add_argument("--step", type=int, help="decoder step to open up, from 1 (default: a word with a clear "
                                            "source counterpart)")
    p.add_argument("--layer", type=int, help="decoder layer, 0-based (default: the most focused one)")
    p.add_argument("--head", type=int, help="attention head, 0-based (default: the layer's most focused head)")
    p.add_argument("--json", metavar="FILE", help="also write the whole trace as JSON")
    add_model_options(p)
    p.set_defaults(func=cmd_explain)


# -- serve ----------------------------------------------------------------------------
def cmd_serve(args) -> None:
    import uvicorn

    from . import server

    from .libretranslate import Access, read_api_keys
    from .translator import Translator

    limits = Limits(max_chars=args.max_chars, max_texts=args.max_texts, max_body_bytes=args.max_body_kb * 1024,
                    max_beam=args.max_beam, max_batch=args.max_batch, batch_wait_ms=args.batch_wait_ms,
                    timeout_s=args.timeout, max_queue=args.max_queue,
                    max_file_bytes=int(args.max_file_mb * (1 << 20)), file_ttl_s=args.file_ttl,
                    file_store_bytes=int(args.file_store_mb * (1 << 20)), file_timeout_s=args.file_timeout)
    if min(args.max_chars, args.max_texts, args.max_body_kb, args.max_beam, args.max_batch, args.max_queue) < 1 \
            or args.timeout <= 0 or args.batch_wait_ms < 0 or args.req_limit < 0:
        raise CLIError("limits must be positive")
    if min(args.max_file_mb, args.file_ttl, args.file_store_mb, args.file_timeout) <= 0:
        raise CLIError("--max-file-mb, --file-ttl, --file-store-mb and --file-timeout must be positive")
    access = Access(read_api_keys(args.api_keys) if args.api_keys else {}, args.req_limit, args.require_api_key)
    glossary = read_glossary(args)  # every request's default (a request's own entries are added)
    load = lambda m: Translator.load(m, device=args.device, dtype=args.dtype, threads=args.threads or 0)  # noqa: E731
    if args.model:  # one model directory
        translator = load(args.model)
        translators = {translator.direction or f"{args.source_lang}-{args.target_lang}": translator}
    else:  # every shipped direction, the one of --from/--to first
        first = f"{args.source_lang}-{args.target_lang}"
        names = [first] + [d for d in shipped_directions() if d != first]
        translators = {name: load(name) for name in names}
    app = server.create_app(translators, limits, args.model, access, glossary=glossary)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"crossattn: warning: serving on {args.host}: anyone who can reach it can use the model")
    print(f"crossattn: serving {', '.join(translators)} on http://{args.host}:{args.port}/ "
          "(API: /openapi.json; LibreTranslate API: /translate, /languages)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)


def add_serve_commands(subparsers) -> None:
    d = Limits()
    p = subparsers.add_parser("serve", help="web page + JSON API with dynamic batching")
    add_model_options(p)
    add_glossary_option(p)
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default: loopback only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--threads", type=int, help="CPU threads for translation (default: CTranslate2's choice)")
    p.add_argument("--max-batch", type=int, default=d.max_batch, help="texts per model call")
    p.add_argument("--batch-wait-ms", type=float, default=d.batch_wait_ms, help="wait for more requests to batch")
    p.add_argument("--timeout", type=float, default=d.timeout_s, help="seconds per request, queueing included")
    p.add_argument("--max-chars", type=int, default=d.max_chars, help="characters per text")
    p.add_argument("--max-texts", type=int, default=d.max_texts, help="texts per request")
    p.add_argument("--max-body-kb", type=int, default=d.max_body_bytes // 1024, help="request body size")
    p.add_argument("--max-beam", type=int, default=d.max_beam)
    p.add_argument("--max-queue", type=int, default=d.max_queue, help="texts waiting before 503 busy")
    p.add_argument("--api-keys", metavar="FILE",
                   help="API keys (LibreTranslate's api_key field, and /api/*'s): one per line, optionally followed by "
                        "requests per minute")
    p.add_argument("--req-limit", type=int, default=0,
                   help="both APIs: requests per minute per client without a key (0 = no limit)")
    p.add_argument("--require-api-key", action="store_true", help="both APIs (and the page, which asks for the key): refuse requests without a key")
    p.add_argument("--max-file-mb", type=float, default=d.max_file_bytes / (1 << 20),
                   help="POST /translate_file: the largest file accepted (413 beyond); archives (.docx, .odt, "
                        ".odp, .pptx, .epub) are also refused (400) beyond documents.DocumentLimits: members, "
                        "total uncompressed size, compression ratio, each named in the error")
    p.add_argument("--file-ttl", type=float, default=d.file_ttl_s,
                   help="seconds a translated file waits for its download before it is deleted "
                        "(it is deleted once downloaded too)")
    p.add_argument("--file-store-mb", type=float, default=d.file_store_bytes / (1 << 20),
                   help="translated files held at once, in a private temporary folder (503 beyond)")
    p.add_argument("--file-timeout", type=float, default=d.file_timeout_s,
                   help="seconds per file translation, queueing included")
    p.add_argument("--log-level", default="warning", help="uvicorn log level")
    p.set_defaults(func=cmd_serve)


# -- export ---------------------------------------------------------------------------
def cmd_export(args) -> None:
    if args.format == "argos":
        print(export_argos(model_arg(args), args.out, args.quantization or "int8", args.force))
    else:
        print(export_ctranslate2(model_arg(args), args.out, args.quantization, args.force))


def add_export_commands(subparsers) -> None:
    p = subparsers.add_parser("export", help="export a model for another engine (CTranslate2, Argos Translate)")
    p.add_argument("--format", default="ctranslate2", choices=["ctranslate2", "argos"],
                   help="ctranslate2: a model directory; argos: an .argosmodel package (int8 weights by default)")
    p.add_argument("--out", required=True, metavar="PATH", help="output directory (ctranslate2) or FILE.argosmodel")
    p.add_argument("--quantization", choices=["int8", "int8_float32", "int16", "float16", "bfloat16"],
                   help="store weights quantized (default float32; CTranslate2 can also quantize at load time)")
    p.add_argument("--force", action="store_true", help="replace an earlier export in --out (never another directory)")
    add_model_options(p, engine=False)
    p.set_defaults(func=cmd_export)


def cmd_import(args) -> None:
    from .marian import import_marian

    print(import_marian(args.checkpoint, args.out, args.source, args.target))


def add_import_commands(subparsers) -> None:
    p = subparsers.add_parser("import", help="import a Marian / OPUS-MT checkpoint (Hugging Face format) as a model directory")
    p.add_argument("checkpoint", metavar="DIR",
                   help="the checkpoint's folder (config.json, model.safetensors or pytorch_model.bin, source.spm, "
                        "target.spm, vocab.json), or a Hugging Face name such as Helsinki-NLP/opus-mt-en-fr "
                        "(downloaded with huggingface_hub)")
    p.add_argument("--out", required=True, metavar="MODEL_DIR", help="the model directory to write (new or empty)")
    p.add_argument("--from", dest="source", metavar="LANG", help="source language (default: the checkpoint's)")
    p.add_argument("--to", dest="target", metavar="LANG", help="target language (default: the checkpoint's)")
    p.set_defaults(func=cmd_import)


def add_commands(sub) -> None:
    for add in (add_attend_commands, add_align_commands, add_explain_commands, add_serve_commands, add_export_commands,
                add_import_commands):
        add(sub)
