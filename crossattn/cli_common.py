"""What cli.py and commands.py share: the one-line CLIError, whole-or-absent output files,
the --model/--from/--to, --device/--dtype and decoding options, and loading the engine
they name. Command-line layer: the library below knows nothing of it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .atomic import crash_point, fsync_dir, fsync_file, temporary_name
from .errors import CrossattnError
from .glossary import Glossary

EXIT_ERROR = 1


class CLIError(CrossattnError):
    """A problem the user can fix; printed as one line."""


class AtomicOutput:
    """Standard output, or a file written under a temporary name and renamed into place
    when complete: a killed run leaves the previous file (or none), never a truncated one."""

    def __init__(self, path: str | None):
        self.path = None if path in (None, "-") else Path(path)
        self.tmp = None if self.path is None else temporary_name(self.path)

    def __enter__(self):
        if self.tmp is None:
            return sys.stdout
        try:
            self.file = open(self.tmp, "w", encoding="utf-8", newline="\n")
        except OSError as e:
            raise CLIError(f"cannot write {self.path}: {e.strerror}") from None
        return self.file

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.tmp is None:
            sys.stdout.flush()
            return
        try:
            self.file.close()
            if exc_type is None:
                fsync_file(self.tmp)
                crash_point("output-write", 1)
                os.replace(self.tmp, self.path)
                fsync_dir(self.path.parent)
        except OSError as e:
            raise CLIError(f"cannot write {self.path}: {e.strerror}") from None
        finally:
            self.tmp.unlink(missing_ok=True)


def write_lines(path: str | None, lines: list[str]) -> None:
    with AtomicOutput(path) as out:
        out.write("".join(line + "\n" for line in lines))


def write_json(path: str, data) -> None:
    with AtomicOutput(path) as out:
        out.write(json.dumps(data, ensure_ascii=False) + "\n")


def model_arg(args) -> str:
    """--model DIR, else the shipped model for --from/--to."""
    if args.model:
        return args.model
    if args.source_lang == "auto":  # translate --from auto: the shipped model into --to
        from .modeldir import shipped_directions

        into = [d for d in shipped_directions() if d.endswith(f"-{args.target_lang}")]
        if len(into) != 1:
            raise CLIError(f"--from auto --to {args.target_lang}: {len(into)} shipped models translate into "
                           f"{args.target_lang}; choose --from or --model")
        return into[0]
    if args.source_lang == args.target_lang:
        raise CLIError(f"--from and --to are both {args.source_lang}: choose two languages")
    return f"{args.source_lang}-{args.target_lang}"


def load_translator(args):
    """The CTranslate2 Translator: translate, evaluate, serve."""
    from .translator import Translator

    return Translator.load(model_arg(args), device=args.device, dtype=args.dtype, threads=getattr(args, "threads", None))


def load_torch_translator(args):
    """The torch engine: the commands that read the network's attention."""
    from .torch_engine import TorchTranslator

    return TorchTranslator.load(model_arg(args), device=args.device, dtype=args.dtype)


# -- options shared by the commands -------------------------------------------------------
def device_choice(value: str) -> str:
    """argparse type for --device: auto, cpu, cuda or cuda:N, and a GPU must exist for cuda."""
    if value in ("auto", "cpu"):
        return value
    head, _, index = value.partition(":")
    if head != "cuda" or (index and not index.isdigit()):
        raise argparse.ArgumentTypeError(f"invalid choice: {value!r} (choose from auto, cpu, cuda, cuda:N)")
    import torch  # only asked for a GPU: then the import is worth its seconds

    if not torch.cuda.is_available():
        raise argparse.ArgumentTypeError(f"{value!r}: no CUDA GPU on this machine (choose from auto, cpu)")
    return value


def add_model_options(p: argparse.ArgumentParser, engine: bool = True, dtype_help: str | None = None,
                      auto_source: bool = False) -> None:
    """``auto_source``: --from auto is offered (translate: lines already in --to are kept as they are)."""
    if auto_source:
        p.add_argument("--from", dest="source_lang", default="en", choices=("en", "fr", "auto"),
                       help="source language; auto: detect each input, and give back unchanged the ones "
                            "already in --to")
    else:
        p.add_argument("--from", dest="source_lang", default="en", choices=("en", "fr"), help="source language")
    p.add_argument("--to", dest="target_lang", default="fr", choices=("en", "fr"), help="target language")
    p.add_argument("--model", help="model directory (default: the shipped model for --from/--to)")
    if not engine:
        return
    p.add_argument("--device", default="auto", type=device_choice, metavar="{auto,cpu,cuda,cuda:N}",
                   help="auto: a GPU if there is one, else the CPU")
    p.add_argument("--dtype", default="auto", choices=("auto", "fp32", "bf16", "int8"),
                   help=dtype_help or "auto (precision.py): bf16 on a GPU; on a CPU, int8 for CTranslate2 (translate, "
                                      "evaluate, serve) and fp32 for the torch network (attend, explain)")


def thread_count(value: str) -> int:
    """argparse type for --threads: a positive integer."""
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"invalid thread count: {value!r} (a positive integer)")
    return int(value)


def add_glossary_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--glossary", metavar="FILE",
                   help="terms translated as the file says: one 'source term<TAB>translation' per line, "
                        "'#' comments (matched on whole words, any case, longest first)")


def read_glossary(args: argparse.Namespace) -> Glossary | None:
    """--glossary's file (a malformed line is a one-line error naming it), or None."""
    return Glossary.read(args.glossary) if args.glossary else None


def add_threads_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=thread_count, metavar="N",
                   help="CPU threads for translation (default: the count this machine translates fastest with, "
                        "timed once and cached: translator.measured_threads)")


def add_decoding_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--beam", type=int, help="beam size (1 = greedy; default: the model's setting)")
    p.add_argument("--alpha", type=float, help="length penalty exponent (default: the model's setting)")
    p.add_argument("--batch-size", type=int, default=64, help="sentences per batch")
