"""`Translator._search`'s length groups: what they promise, and the order they are queued in.

1. ``--part alone``: sentences translated together (grouped by exact length budget, as
   `_search` does) and each alone give the same tokens: a group's size changes no
   translation (padding would; bench/README.md, "Length budgets rounded up").
2. ``--part order``: on the opus-mt-en-fr-shaped random Marian model (tests/test_marian.py's
   checkpoint; int8, 2 threads), draws of random sentences queued longest first and
   costliest first (`translator.group_cost`), both through the shipped `_search` with its
   cost rule swapped, each against CTranslate2 on its own converter's model in one padded
   batch, alternating rounds; medians and ratios.

    .venv/bin/python bench/length_groups.py --part alone [--dtype fp32] [--sentences 300]
    .venv/bin/python bench/length_groups.py --part order [--draws 16:0,16:1,8:0] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the random checkpoint tests/test_marian.py builds: one definition

from common import machine_info  # noqa: E402

DEV = Path("../shared/data/wmt/newstest2012.tsv")  # a dev set of the data README


@contextmanager
def patched(module, name: str, value):
    """``module.name`` set to ``value`` for the block."""
    saved = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, saved)


def alone(args) -> dict:
    from crossattn.translator import Translator

    translator = Translator.load("en-fr", device="cpu", dtype=args.dtype, threads=1)
    lines = [line.split("\t")[0] for line in (ROOT / DEV).read_text().splitlines()]
    lines = random.Random(1).sample([line for line in lines if 4 <= len(line.split()) <= 30], args.sentences)
    sources = [translator.tokenizer.encode(line) for line in lines]
    together = translator._search(sources, 4, 1.0, 64, guard=False)
    each = [translator._search([ids], 4, 1.0, 64, guard=False)[0] for ids in sources]
    lengths = Counter(len(ids) for ids in sources)
    return {"dtype": args.dtype, "sentences": len(sources), "sharing_their_length": sum(
        n for n in lengths.values() if n > 1), "differ": sum(a != b for a, b in zip(together, each))}


def order(args) -> dict:
    import ctranslate2
    from ctranslate2.converters import TransformersConverter
    from test_marian import EN, write_checkpoint

    from crossattn import translator as translator_module
    from crossattn.marian import import_marian
    from crossattn.translator import Translator, group_cost

    out = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_checkpoint(tmp / "opus-mt-en-fr", d_model=512, heads=8, ffn=2048, layers=6, vocab_size=59514)
        import_marian(tmp / "opus-mt-en-fr", tmp / "imported")
        TransformersConverter(str(tmp / "opus-mt-en-fr")).convert(str(tmp / "ct2-own"))
        ours = Translator(tmp / "imported", device="cpu", dtype="int8", threads=2)
        own = ctranslate2.Translator(str(tmp / "ct2-own"), device="cpu", compute_type="int8", intra_threads=2)
        for draw in args.draws.split(","):
            size, seed = map(int, draw.split(":"))
            rng = random.Random(seed)
            texts = [" ".join(rng.choice(EN) for _ in range(rng.randint(6, 16))) for _ in range(size)]
            sources = [ours.tokenizer.encode(t) for t in texts]
            pieces = [[ours.tokenizer.id_to_piece(i) for i in ids] + ["</s>"] for ids in sources]
            budget = max(ours._budget(ids) for ids in sources)

            def queued(cost, sources=sources):  # the shipped _search, its queue ordered by ``cost``
                with patched(translator_module, "group_cost", cost):
                    return ours._search(sources, 4, 1.0, 64, guard=False)

            def padded(pieces=pieces, budget=budget):
                return [r.hypotheses[0] for r in own.translate_batch(
                    pieces, beam_size=4, length_penalty=1.0, max_decoding_length=budget, max_input_length=0)]
            runs = {"longest first": lambda: queued(lambda budget, sentences: budget),  # budgets grow with length
                    "costliest first": lambda: queued(group_cost),
                    "CTranslate2, one padded batch": padded}
            outputs = {name: fn() for name, fn in runs.items()}  # warm-up
            assert outputs["longest first"] == outputs["costliest first"]  # the order changes no output
            times = {name: [] for name in runs}
            for _ in range(args.rounds):
                for name, fn in runs.items():
                    start = time.perf_counter()
                    fn()
                    times[name].append(time.perf_counter() - start)
            medians = {name: statistics.median(t) for name, t in times.items()}
            own_s = medians["CTranslate2, one padded batch"]
            out.append({"sentences": size, "seed": seed, "median_s": {k: round(v, 3) for k, v in medians.items()},
                        "speed_vs_ctranslate2": {k: round(own_s / v, 3) for k, v in medians.items()}})
            print(json.dumps(out[-1]), file=sys.stderr, flush=True)
    return {"draws": out}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=("alone", "order"), required=True)
    ap.add_argument("--dtype", choices=("fp32", "int8"), default="fp32")
    ap.add_argument("--sentences", type=int, default=300)
    ap.add_argument("--draws", default="16:0,16:1,16:2,8:0,32:0,16:3,16:4,16:5,16:6,16:7,16:8",
                    help="SENTENCES:SEED,... (order)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    threads = 1 if args.part == "alone" else 2
    result = {"machine": machine_info(threads), "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "settings": vars(args)}
    result |= alone(args) if args.part == "alone" else order(args)
    result["finished"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
