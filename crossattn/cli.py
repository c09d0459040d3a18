"""The ``crossattn`` command line.

Heavy imports (torch, sentencepiece, matplotlib) happen inside each command, so a
cold ``crossattn translate "..."`` only pays for what it uses: with the NumPy engine
it never imports torch. Expected failures (bad files, a broken model directory, bad
options) print one line and exit 1.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from pathlib import Path

EXIT_ERROR = 1


class CLIError(Exception):
    """A problem the user can fix; printed as one line."""


def read_lines(path: str) -> list[str]:
    """Lines of a UTF-8 file, or of standard input for '-'; invalid UTF-8 is a clear error."""
    try:
        data = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as e:
        raise CLIError(f"cannot read {path}: {e.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise CLIError(f"{'<stdin>' if path == '-' else path}:{line}: invalid UTF-8") from None
    # "\n" only: str.splitlines() also breaks at U+2028, \x85, \x0b..., which would give
    # more translations than input lines
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def write_lines(path: str | None, lines: list[str]) -> None:
    text = "".join(line + "\n" for line in lines)
    if path is None or path == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as e:
        raise CLIError(f"cannot write {path}: {e.strerror}") from None


def write_json(path: str, data) -> None:
    import json

    try:
        Path(path).write_text(json.dumps(data, ensure_ascii=False) + "\n", encoding="utf-8")
    except OSError as e:
        raise CLIError(f"cannot write {path}: {e.strerror}") from None


def load_translator(args):
    from .translator import Translator

    return Translator.load(args.model, device=args.device, dtype=args.dtype)


# Measured with the shipped model on a 2-core CPU: the NumPy engine starts ~2.5 s sooner
# (no torch import) but takes ~0.1 s per sentence against ~0.02 s for batched torch.
NUMPY_MAX_SENTENCES = 16


def use_numpy_engine(args, sentences: int) -> bool:
    """``--engine auto``: a few sentences (arguments, a short file or standard input) are
    translated on the CPU by the NumPy engine, which gives the same translations as torch
    in fp32; more sentences and other devices or dtypes use torch."""
    if args.engine == "auto":
        return (0 < sentences <= NUMPY_MAX_SENTENCES and args.device in ("auto", "cpu")
                and args.dtype in ("auto", "fp32"))
    if args.engine == "numpy" and (args.device not in ("auto", "cpu") or args.dtype not in ("auto", "fp32")):
        raise CLIError("--engine numpy runs on the CPU in fp32 only (--device cpu, --dtype fp32)")
    return args.engine == "numpy"


# -- commands -------------------------------------------------------------------------
def cmd_train(args) -> None:
    from .train import run

    model_dir = run(args)
    print(model_dir)


def cmd_translate(args) -> None:
    if args.text and args.input:
        raise CLIError("give either TEXT arguments or -i FILE, not both")
    lines = args.text if args.text else read_lines(args.input or "-")
    if use_numpy_engine(args, len(lines)):
        from .numpy_engine import NumpyTranslator

        translations = NumpyTranslator.load(args.model).translate(lines, beam=args.beam, alpha=args.alpha)
    else:
        translations = load_translator(args).translate(lines, beam=args.beam, alpha=args.alpha, batch_size=args.batch_size)
    write_lines(args.output, translations)


def cmd_evaluate(args) -> None:
    import sacrebleu

    from .data import load_corpus, parse_corpus_arg

    pairs, stats = load_corpus([parse_corpus_arg(args.test)], max_chars=None, max_ratio=None, dedup=False)
    if not pairs:
        raise CLIError(f"{args.test}: no sentence pairs ({stats.summary()})")
    if args.limit:
        pairs = pairs[: args.limit]
    translator = load_translator(args)
    hyps = translator.translate([s for s, _ in pairs], beam=args.beam, alpha=args.alpha, batch_size=args.batch_size)
    refs = [t for _, t in pairs]
    bleu = sacrebleu.corpus_bleu(hyps, [refs])
    chrf = sacrebleu.corpus_chrf(hyps, [refs])
    if args.out:
        write_lines(args.out, hyps)
    print(f"BLEU {bleu.score:.2f}\tchrF {chrf.score:.2f}\tsentences {len(pairs)}")
    print(f"sacrebleu: {bleu}", file=sys.stderr)


# -- parser ---------------------------------------------------------------------------
def add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="model directory (default: the shipped en-fr model)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--dtype", default="auto", help="auto | fp32 | bf16 | int8 (auto: bf16 where the hardware is fast at it, else fp32; "
                        "int8: dynamic quantization on CPU)")


def add_decoding_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--beam", type=int, help="beam size (1 = greedy; default: the model's setting)")
    p.add_argument("--alpha", type=float, help="length penalty exponent (default: the model's setting)")
    p.add_argument("--batch-size", type=int, default=64, help="sentences per batch")


def build_parser(extensions: bool = True) -> argparse.ArgumentParser:
    """All commands; ``extensions=False`` leaves out those of COMMAND_MODULES (they import torch)."""
    parser = argparse.ArgumentParser(prog="crossattn", description="Transformer translation with visible cross-attention.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a model on parallel text")
    p.add_argument("--train", action="append", required=True, metavar="FILE",
                   help="TSV (src<TAB>tgt, .gz ok) or SRC_FILE:TGT_FILE line-aligned pair; repeatable")
    p.add_argument("--valid", required=True, metavar="FILE", help="dev set, same formats")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory (checkpoints, model/, logs)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--config", metavar="FILE.toml", help="TOML with [model] and [train] tables (and optional preset)")
    g.add_argument("--preset", help="tiny | small | base")
    p.add_argument("--max-steps", type=int)
    p.add_argument("--max-minutes", type=float)
    p.add_argument("--max-tokens", type=int, help="tokens per batch per process")
    p.add_argument("--eval-every", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="auto | cpu | cuda")
    p.add_argument("--dtype", help="auto | bf16 | fp32 (autocast)")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --out")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("translate", help="translate text (arguments, -i FILE, or standard input)")
    p.add_argument("text", nargs="*", help="sentences to translate")
    p.add_argument("-i", "--input", metavar="FILE", help="one sentence per line; '-' for standard input")
    p.add_argument("-o", "--output", metavar="FILE", help="write translations here (default: standard output)")
    add_model_options(p)
    add_decoding_options(p)
    p.add_argument("--engine", choices=("auto", "torch", "numpy"), default="auto",
                   help=f"auto: NumPy for up to {NUMPY_MAX_SENTENCES} sentences (fast start, CPU fp32), torch otherwise")
    p.set_defaults(func=cmd_translate)

    p = sub.add_parser("evaluate", help="BLEU and chrF on a test set")
    p.add_argument("--test", required=True, metavar="FILE.tsv")
    p.add_argument("--out", metavar="HYP.txt", help="write the hypotheses here")
    p.add_argument("--limit", type=int, help="only the first N pairs")
    add_model_options(p)
    add_decoding_options(p)
    p.set_defaults(func=cmd_evaluate)

    for name in COMMAND_MODULES if extensions else ():
        module = importlib.import_module(f".{name}", __package__)
        module.add_commands(sub)
    return parser


# Modules that add subcommands through ``add_commands(subparsers)``. Their top-level
# imports must stay light (torch at most): matplotlib, fastapi etc. load inside commands.
# The core commands, defined above, are parsed without importing them.
COMMAND_MODULES = [name for name in ("visualize", "align", "server", "export", "explain")
                   if importlib.util.find_spec(f"{__package__}.{name}") is not None]
CORE_COMMANDS = ("train", "translate", "evaluate")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(extensions=not (argv and argv[0] in CORE_COMMANDS)).parse_args(argv)
    try:
        args.func(args)
    except (CLIError, ValueError) as e:  # ValueError: DataError, TokenizerError, ModelDirError, config checks
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
