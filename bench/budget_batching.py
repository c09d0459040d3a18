"""Would rounding the output-length budget up let sentences share CTranslate2 calls?

Translator._search gives each source its own length budget (decoding.max_output_length of
its length), and CTranslate2 takes one budget per call, so sources are grouped by length:
a handful of sentences of different lengths makes one call each. This measures the
alternative that was tried and not taken, budgets rounded up to a multiple of STEP so that
different lengths share a call, side by side with today's rule in one process:

- on the first N lines of three dev sets in both directions (beam 2): BLEU, and how many
  outputs differ from today's (which equal each sentence translated alone);
- the time of batches of 16 tatoeba/dev sentences (beam 4), the two rules in turns.

Result 2026-12-06 (bench/README.md): 1.22-1.27x faster, but 0-13 of 400 outputs per set
change, each because padding beside longer sources changes CTranslate2's numbers, so a
translation would depend on its batch. Usage: python bench/budget_batching.py [N]
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import sacrebleu

import crossattn.translator as translator_module
from crossattn.translator import Translator

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
STEP = 16
today = translator_module.max_output_length


def rounded(src_len: int, max_positions: int) -> int:
    budget = -(-today(src_len, max_positions) // STEP) * STEP
    return max(1, min(budget, max_positions - 1))


RULES = {"per length (today)": today, f"rounded up to {STEP}": rounded}


def pairs(name: str, n: int) -> list[tuple[str, str]]:
    rows = [line.split("\t") for line in (DATA / name).read_text(encoding="utf-8").splitlines()[:n]]
    return [(r[0], r[1]) for r in rows if len(r) >= 2]


def translate_with(rule, translator: Translator, texts: list[str], beam: int) -> list[str]:
    translator_module.max_output_length = rule
    try:
        return translator.translate(texts, beam=beam)
    finally:
        translator_module.max_output_length = today


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 400
    results = {}
    for direction in ("en-fr", "fr-en"):
        translator = Translator.load(direction, threads=1)
        for name in ("tatoeba/dev.tsv", "wmt/newstest2012.tsv", "hansard/dev.tsv"):
            rows = pairs(name, n)
            sources = [a if direction == "en-fr" else b for a, b in rows]
            refs = [b if direction == "en-fr" else a for a, b in rows]
            outs = {label: translate_with(rule, translator, sources, 2) for label, rule in RULES.items()}
            first, second = outs.values()
            results[f"{direction} {name}"] = {
                "lines": len(sources), "outputs_that_differ": sum(a != b for a, b in zip(first, second)),
                "bleu": {label: round(sacrebleu.corpus_bleu(o, [refs]).score, 2) for label, o in outs.items()}}
            print(direction, name, results[f"{direction} {name}"], flush=True)
        sources = [a if direction == "en-fr" else b for a, b in pairs("tatoeba/dev.tsv", 16 * 20)]
        seconds = {label: [] for label in RULES}
        for k in range(20):
            order = list(RULES.items()) if k % 2 else list(RULES.items())[::-1]
            for label, rule in order:
                t0 = time.perf_counter()
                translate_with(rule, translator, sources[16 * k: 16 * (k + 1)], 4)
                seconds[label].append(time.perf_counter() - t0)
        medians = {label: statistics.median(s) for label, s in seconds.items()}
        today_s, rounded_s = medians.values()
        results[f"{direction} 16-sentence batches, beam 4"] = {"median_s": medians, "rounded_speedup": today_s / rounded_s}
        print(direction, results[f"{direction} 16-sentence batches, beam 4"], flush=True)
    out = REPO / "bench" / "results" / "budget_batching.json"
    out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
