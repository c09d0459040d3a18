"""Threads as parallel batches (inter_threads) or inside one batch (intra_threads)?

Translator._search sends each length group as a batch of its own (so that nothing is
padded and a translation never depends on its batch), so a server batch of 24 one-sentence
requests becomes some ten calls of 1-4 sentences. This times, in one process and in turns,
the shipped model's engine with the usable CPUs as N batches of 1 thread (what the
translator does since 2026-12-06) and as 1 batch of N threads, each driving
Translator._search itself (its length groups, queued at once; the repetition guard off):

- single sentences, one call each (an interactive user);
- batches of 24 sentences (a server's batch of concurrent requests);
- one batch of 480 sentences (a file).

Per workload: each layout's seconds per round, the median over rounds of the ratio
(intra / inter: above 1 means the parallel batches are faster), and the number of outputs
that differ between the two layouts. Usage:
    python bench/parallel_batches.py [--direction en-fr] [--rounds 3] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import ctranslate2

from crossattn.precision import COMPUTE_TYPES
from crossattn.translator import Translator, usable_cpus

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
WORKLOADS = {"single sentences": (1, 40), "server batches of 24": (24, 240), "a file of 480": (480, 480)}


def source_ids(translator: Translator, texts: list[str]) -> list[list[int]]:
    """The sentence ids Translator.translate searches for ``texts`` (taken from its own call)."""
    seen: list[list[int]] = []
    search = translator._search

    def capture(sources, *args, **kwargs):
        seen.extend(sources)
        return search(sources, *args, **kwargs)

    translator._search = capture
    try:
        translator.translate(texts)
    finally:
        del translator._search
    return seen


def run(engine, translator: Translator, batches: list[list[list[int]]], beam: int, alpha: float) -> list:
    """Translator._search itself (its length groups queued at once) on ``engine``, batch
    after batch; the repetition guard off, so that both layouts do the same searches."""
    translator.engine = engine
    return [hyp for sources in batches for hyp in translator._search(sources, beam, alpha, 64, guard=False)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--direction", default="en-fr")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    cpus = usable_cpus()
    translator = Translator.load(args.direction, threads=1)
    compute = COMPUTE_TYPES[translator.dtype]
    beam, alpha = translator.decoding["beam"], translator.decoding["alpha"]
    layouts = {f"{cpus} batches x 1 thread": (cpus, 1), f"1 batch x {cpus} threads": (1, cpus)}
    engines = {name: ctranslate2.Translator(str(translator.ct2_dir), device="cpu", compute_type=compute,
                                            inter_threads=inter, intra_threads=intra)
               for name, (inter, intra) in layouts.items()}
    side = 0 if args.direction.startswith("en") else 1
    rows = (DATA / "tatoeba" / "dev.tsv").read_text(encoding="utf-8").splitlines()
    texts = [row.split("\t")[side] for row in rows[1000:]]
    report = {"direction": args.direction, "dtype": translator.dtype, "beam": beam, "cpus": cpus,
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "workloads": {}}
    for workload, (size, count) in WORKLOADS.items():
        sources = source_ids(translator, texts[:count])
        batches = [sources[i : i + size] for i in range(0, len(sources), size)]
        for engine in engines.values():  # warm-up
            run(engine, translator, batches[:1], beam, alpha)
        seconds: dict[str, list[float]] = {name: [] for name in engines}
        outputs = {}
        for _ in range(args.rounds):
            for name, engine in engines.items():
                start = time.perf_counter()
                outputs[name] = run(engine, translator, batches, beam, alpha)
                seconds[name].append(time.perf_counter() - start)
        inter, intra = list(engines)
        ratio = statistics.median(b / a for a, b in zip(seconds[inter], seconds[intra]))
        report["workloads"][workload] = {
            "sentences": len(sources), "seconds": seconds, "intra_over_inter_median": round(ratio, 3),
            "outputs_differing": sum(a != b for a, b in zip(outputs[inter], outputs[intra])),
            "load_average": round(os.getloadavg()[0], 2)}
        print(workload, json.dumps(report["workloads"][workload]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
