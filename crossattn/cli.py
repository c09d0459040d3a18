"""The ``crossattn`` command line.

With commands.py and cli_common.py, the command-line layer: the only modules that know
about argparse and exit codes (main, here, turns errors into them). Heavy imports (torch,
matplotlib) happen inside each command, so a cold ``crossattn translate "..."`` pays
only for CTranslate2 and SentencePiece. Expected failures (bad files, a broken model
directory, bad options: the library's CrossattnError) print one line and exit 1; bad
option values exit 2 through argparse; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

from .cli_common import (EXIT_ERROR, AtomicOutput, CLIError, add_decoding_options, add_model_options,
                         add_glossary_option, add_threads_option, device_choice, load_translator, read_glossary,
                         write_lines)
from .errors import CrossattnError
from .text import iter_lines

# -- commands -------------------------------------------------------------------------
def cmd_train(args) -> None:
    from .train import run

    model_dir = run(args)
    print(model_dir)


# Lines translated per call when streaming a file: big enough for good batches, small
# enough that memory stays flat in the file size.
STREAM_CHUNK = 2000


HTML_SUFFIXES = (".html", ".htm")


def translation_format(args) -> str:
    """--format, or for "auto": html for an .html/.htm input file, "document" for the other
    document types documents.py reads (.docx, .srt, .po, ...), else text."""
    if args.format != "auto":
        return args.format
    suffix = Path(args.input or "").suffix.lower()
    if suffix in HTML_SUFFIXES:
        return "html"
    if suffix and suffix != ".txt":  # documents.py (lxml, polib, srt) imported only for such a file
        from .documents import SUPPORTED_EXTENSIONS

        if suffix in SUPPORTED_EXTENSIONS:
            return "document"
    return "text"


def read_document(path: str) -> str:
    """A whole file (or standard input, "-") as one text, UTF-8."""
    try:
        data = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as e:
        raise CLIError(f"{path}: {e.strerror or e}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise CLIError(f"{path}: not UTF-8 text (byte {e.start})") from None


def reverse_heads(translator):
    """The other direction's alignment heads when that model is shipped, to symmetrize the
    tags' placement with (as ``crossattn align``); None otherwise."""
    from .commands import reverse_alignment_model

    forward = translator.alignment_model()
    return reverse_alignment_model(None, forward) if forward is not None else None


def translate_html_documents(args, translator, documents: list[str]) -> list[str]:
    """HTML documents translated with markup kept, the tags placed by the alignment heads
    of both directions when the other direction is shipped (as ``crossattn align``)."""
    return translator.translate_html(documents, beam=args.beam, alpha=args.alpha, batch_size=args.batch_size,
                                     backward=reverse_heads(translator), glossary=read_glossary(args))


def translate_document_file(args) -> None:
    """``-i report.docx -o rapport.docx``: the document translated in its own format
    (documents.py), written whole or not at all; a binary format needs ``-o``."""
    from .atomic import write_bytes_atomic
    from .documents import BINARY_EXTENSIONS, extension, translate_document

    if args.source_lang == "auto":
        raise CLIError(f"{args.input}: a document needs the source language (--from auto is for text)")
    if args.no_split:
        raise CLIError("--no-split is for text: a document's paragraphs are split into sentences")
    if args.json:
        raise CLIError("--json is for text: a document is written in its own format")
    if args.output in (None, "-") and extension(args.input) in BINARY_EXTENSIONS:
        raise CLIError(f"{args.input}: the translation of a {extension(args.input)} file is not text: give -o FILE")
    try:
        data = Path(args.input).read_bytes()
    except OSError as e:
        raise CLIError(f"{args.input}: {e.strerror or e}") from None
    # a malformed glossary, then a corrupt or unsafe file (a first pass with nothing
    # translated), are refused before the model loads
    glossary = read_glossary(args)
    translate_document(data, args.input, lambda texts: texts, lambda documents: documents)
    translator = load_translator(args)
    out = translator.translate_document(data, args.input, beam=args.beam, alpha=args.alpha,
                                        batch_size=args.batch_size, backward=reverse_heads(translator),
                                        glossary=glossary)
    if args.output in (None, "-"):
        sys.stdout.buffer.write(out)
        sys.stdout.flush()
        return
    try:
        write_bytes_atomic(args.output, out)
    except OSError as e:
        raise CLIError(f"cannot write {args.output}: {e.strerror or e}") from None


def cmd_translate(args) -> None:
    if args.text and args.input:
        raise CLIError("give either TEXT arguments or -i FILE, not both")
    fmt = translation_format(args)
    if fmt == "document":
        translate_document_file(args)
        return
    if fmt == "html" and args.source_lang == "auto":
        raise CLIError("--format html needs the source language (--from auto is for text)")
    if fmt == "html" and args.no_split:
        raise CLIError("--no-split is for text: in html each block is split into sentences")
    if fmt == "html" and args.json:
        raise CLIError("--json is for text: the confidence of html translations is not given")
    glossary = read_glossary(args)  # a malformed file fails before the model loads
    translator = load_translator(args)
    if fmt == "html":  # each argument, or the whole file, is one document
        if args.text:
            write_lines(args.output, translate_html_documents(args, translator, args.text))
            return
        document = read_document(args.input or "-")
        with AtomicOutput(args.output) as out:
            out.write(translate_html_documents(args, translator, [document])[0])
        return
    options = dict(beam=args.beam, alpha=args.alpha, batch_size=args.batch_size, split_sentences=not args.no_split,
                   keep_target_language=args.source_lang == "auto", glossary=glossary)

    def translate_lines(lines: list[str]) -> list[str]:
        if not args.json:
            return translator.translate(lines, **options)
        # one JSON object per line; a line kept as it is (--from auto) has no confidence: the model wrote none of it
        return [json.dumps(c.to_json() if c is not None else {"translation": line, "confidence": None,
                                                              "sentences": None, "words": None}, ensure_ascii=False)
                for c, line in zip(translator.translate_with_confidence(lines, **options), lines)]

    if args.text:
        write_lines(args.output, translate_lines(args.text))
        return
    path = args.input or "-"
    progress = None
    if sys.stderr.isatty():
        from tqdm import tqdm

        total = None if path == "-" else count_lines(path)
        progress = tqdm(total=total, unit=" lines", file=sys.stderr, dynamic_ncols=True)
    with AtomicOutput(args.output) as out:
        lines = iter_lines(path)
        while chunk := list(itertools.islice(lines, STREAM_CHUNK)):
            out.write("".join(t + "\n" for t in translate_lines(chunk)))
            if progress:
                progress.update(len(chunk))
    if progress:
        progress.close()


def count_lines(path: str) -> int | None:
    try:
        with open(path, "rb") as f:
            return sum(block.count(b"\n") for block in iter(lambda: f.read(1 << 20), b""))
    except OSError:
        return None  # iter_lines reports it


def cmd_evaluate(args) -> None:
    import sacrebleu

    from .data import load_corpus, parse_corpus_arg

    pairs, stats = load_corpus([parse_corpus_arg(args.test)], max_chars=None, max_ratio=None, dedup=False)
    if not pairs:
        raise CLIError(f"{args.test}: no sentence pairs ({stats.summary()})")
    if args.reverse:
        pairs = [(t, s) for s, t in pairs]
    if args.limit:
        pairs = pairs[: args.limit]
    glossary = read_glossary(args)
    translator = load_translator(args)
    hyps = translator.translate([s for s, _ in pairs], beam=args.beam, alpha=args.alpha, batch_size=args.batch_size,
                                split_sentences=args.split, glossary=glossary)
    refs = [t for _, t in pairs]
    bleu = sacrebleu.corpus_bleu(hyps, [refs])
    chrf = sacrebleu.corpus_chrf(hyps, [refs])
    if args.out:
        write_lines(args.out, hyps)
    print(f"BLEU {bleu.score:.2f}\tchrF {chrf.score:.2f}\tsentences {len(pairs)}")
    print(f"sacrebleu: {bleu}", file=sys.stderr)


def build_parser(extensions: bool = True) -> argparse.ArgumentParser:
    """All commands; ``extensions=False`` leaves out those of commands.py (they import torch)."""
    parser = argparse.ArgumentParser(prog="crossattn", description="Transformer translation with visible cross-attention.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a model on parallel text")
    p.add_argument("--train", action="append", required=True, metavar="FILE",
                   help="TSV (src<TAB>tgt, .gz ok) or SRC_FILE:TGT_FILE line-aligned pair, optionally @WEIGHT "
                        "(copies per epoch, e.g. news.tsv@3 or laws.tsv.gz@0.2); repeatable")
    p.add_argument("--guided", action="append", default=[], metavar="FILE",
                   help="more training pairs with word links, source<TAB>target<TAB>i-j links (.gz/.xz ok; "
                        "scripts/pack_gpu_data.py writes them): with [train] guided_alignment > 0 one head "
                        "of cross-attention also learns the links (guided alignment); repeatable")
    p.add_argument("--valid", required=True, metavar="FILE", help="dev set, same formats")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory (checkpoints, model/, logs)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--config", metavar="FILE.toml", help="TOML with [model] and [train] tables (and optional preset)")
    g.add_argument("--preset", help="tiny | small | base")
    p.add_argument("--max-steps", type=int)
    p.add_argument("--max-minutes", type=float)
    p.add_argument("--max-tokens", type=int, help="tokens per batch per process")
    p.add_argument("--eval-every", type=int)
    p.add_argument("--eval-sentences", type=int, help="dev sentences translated for BLEU at each evaluation")
    p.add_argument("--seed", type=int)
    p.add_argument("--device", type=device_choice, metavar="{auto,cpu,cuda,cuda:N}")
    p.add_argument("--dtype", choices=("auto", "bf16", "fp32"),
                   help="autocast; auto = the measured rule of precision.py for this device and model size")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --out")
    p.add_argument("--allow-changed-inputs", action="store_true",
                   help="with --resume: continue although data or settings differ from the saved run")
    p.add_argument("--init-from", metavar="MODEL_DIR",
                   help="start from these weights (fine-tuning): their network and vocabulary are kept")
    p.add_argument("--languages", default="en-fr", metavar="SRC-TGT",
                   help="languages of the data's first and second columns (default en-fr)")
    p.add_argument("--reverse", action="store_true", help="translate the other way: second column -> first")
    p.add_argument("--lr", type=float, help="peak learning rate")
    p.add_argument("--warmup-steps", type=int)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("translate", help="translate text (arguments, -i FILE, or standard input)")
    p.add_argument("text", nargs="*", help="sentences to translate")
    p.add_argument("-i", "--input", metavar="FILE", help="one sentence per line; '-' for standard input")
    p.add_argument("-o", "--output", metavar="FILE", help="write translations here (default: standard output)")
    add_model_options(p, auto_source=True)
    add_decoding_options(p)
    add_threads_option(p)
    add_glossary_option(p)
    p.add_argument("--no-split", action="store_true",
                   help="translate each line as one unit (default: sentence by sentence, joined back in order)")
    p.add_argument("--format", choices=("auto", "text", "html"), default="auto",
                   help="html: markup kept, inline tags placed on the aligned words; each TEXT argument, or the "
                        "whole -i FILE or standard input, is one document (default auto: html for .html/.htm files; "
                        ".docx .pptx .odt .odp .epub .srt .po .pot files are translated in their own format, "
                        "-o FILE required for the binary ones)")
    p.add_argument("--json", action="store_true",
                   help="one JSON object per input line: translation, confidence, sentences and words, each word "
                        "with the model's probability of it (0-1]")
    p.set_defaults(func=cmd_translate)

    p = sub.add_parser("evaluate", help="BLEU and chrF on a test set")
    p.add_argument("--test", required=True, metavar="FILE.tsv")
    p.add_argument("--out", metavar="HYP.txt", help="write the hypotheses here")
    p.add_argument("--limit", type=int, help="only the first N pairs")
    p.add_argument("--reverse", action="store_true",
                   help="the file's second column is the source (e.g. --from fr --to en on en<TAB>fr files)")
    p.add_argument("--split", action="store_true",
                   help="split sources into sentences as translate does (off: test sets hold one sentence per line)")
    add_model_options(p)
    add_decoding_options(p)
    add_threads_option(p)
    add_glossary_option(p)
    p.set_defaults(func=cmd_evaluate)

    if extensions:
        from .commands import add_commands

        add_commands(sub)
    return parser


# The commands of commands.py import torch (and more) to build their parsers; the core
# commands, defined above, are parsed without them.
CORE_COMMANDS = ("train", "translate", "evaluate")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(extensions=not (argv and argv[0] in CORE_COMMANDS)).parse_args(argv)
    try:
        args.func(args)
    except CrossattnError as e:  # DataError, TokenizerError, ModelDirError, ConfigError, PrecisionError, ...
        print(f"crossattn: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except FileNotFoundError as e:
        print(f"crossattn: error: {e.filename}: no such file", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except OSError as e:  # a full disk, an output path under a file, no permission
        where = f"{e.filename}: " if e.filename else ""
        print(f"crossattn: error: {where}{e.strerror or e}", file=sys.stderr)
        return EXIT_ERROR
    return 0


def entry() -> None:
    """Console-script entry: run, flush, and skip interpreter teardown, which costs
    ~1 s with torch loaded (a third of a cold one-sentence translation)."""
    import os

    code = main()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:
        pass
    os._exit(code)


if __name__ == "__main__":
    entry()
