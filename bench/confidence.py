"""Does the model's confidence mean something? (issue 26)

On dev sets, both directions, with the shipped models as ``crossattn translate`` runs them
(CTranslate2, their decoding settings, sentence splitting on):

* the Spearman rank correlation of each line's confidence with its sentence chrF against
  the reference (sacrebleu's sentence_chrf, defaults);
* how much more often the least-confident quarter of the words is absent from the
  reference than the most-confident quarter (a word counts as absent when, lowercased and
  stripped of punctuation at its ends, it is none of the reference's words so treated;
  words that are only punctuation are left out);
* the same split at fixed probabilities (THRESHOLDS; the page underlines the words under
  0.25: crossattn/static/app.js).

Each measure is given for several ways of making a word's probability from its pieces'
(product, minimum, geometric mean) and a line's confidence from its pieces' (geometric
mean with or without the end of sentence, the product, the mean and the minimum of its
words' probabilities), so that confidence.py's choice is the measured one.

    python bench/confidence.py [--sets wmt/newstest2012.tsv hansard/dev.tsv] [--lines 300]
        [--json bench/results/confidence.json]

Lines are taken evenly spaced through each set (the first lines of newstest are a few
articles only). Dev sets only: settings are chosen here, never on test sets.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from crossattn.atomic import write_text_atomic  # noqa: E402

DATA = REPO.parent / "shared" / "data"
SETS = ["wmt/newstest2012.tsv", "hansard/dev.tsv"]
THRESHOLDS = (0.25, 0.5)  # words under each vs the rest; the page's is 0.25 (crossattn/static/app.js)
PUNCTUATION = "\"'«»“”‘’()[]{}.,;:!?¿¡…-–—/"

WORD_RULES = {
    "product": lambda lps: math.exp(sum(lps)),
    "min": lambda lps: math.exp(min(lps)) if lps else 1.0,
    "geometric_mean": lambda lps: math.exp(sum(lps) / len(lps)) if lps else 1.0,
}


def geometric_mean(lps: list[float]) -> float:
    return math.exp(sum(lps) / len(lps)) if lps else 1.0


SENTENCE_RULES = {  # (Confident) -> a line's confidence
    "geometric_mean": lambda c: geometric_mean([lp for s in c.sentences for lp in s.log_probs]),
    "geometric_mean_without_eos": lambda c: geometric_mean([lp for s in c.sentences for lp in s.log_probs[:-1]]),
    "product": lambda c: math.exp(sum(lp for s in c.sentences for lp in s.log_probs)),
    "mean_word_probability": lambda c: sum(w.probability for w in c.words) / len(c.words) if c.words else 1.0,
    "min_word_probability": lambda c: min((w.probability for w in c.words), default=1.0),
}


def ranks(xs: list[float]) -> list[float]:
    """Ranks from 1, ties given their average rank."""
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    out = [0.0] * len(xs)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and xs[order[j + 1]] == xs[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return out


def pearson(a: list[float], b: list[float]) -> float:
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    cov = sum((x - ma) * (y - mb) for x, y in zip(a, b))
    va, vb = sum((x - ma) ** 2 for x in a), sum((y - mb) ** 2 for y in b)
    return cov / math.sqrt(va * vb) if va and vb else 0.0


def spearman(a: list[float], b: list[float]) -> dict:
    """rho, and its 95% interval by Fisher's z (standard error 1.03 / sqrt(n - 3))."""
    rho = pearson(ranks(a), ranks(b))
    z, se = math.atanh(max(min(rho, 0.999999), -0.999999)), 1.03 / math.sqrt(len(a) - 3)
    return {"rho": round(rho, 3), "ci95": [round(math.tanh(z - 1.96 * se), 3), round(math.tanh(z + 1.96 * se), 3)]}


def bare(word: str) -> str:
    return word.strip(PUNCTUATION).lower()


def absent_rates(words: list[tuple[float, bool]]) -> dict:
    """(probability, absent from the reference) per word -> the absent rates of the least
    and most confident quarters, their ratio, and the same split at each of THRESHOLDS."""
    ordered = sorted(words, key=lambda w: w[0])
    q = len(ordered) // 4
    rate = lambda ws: sum(a for _, a in ws) / len(ws) if ws else float("nan")  # noqa: E731
    low, high = rate(ordered[:q]), rate(ordered[-q:])
    out = {"words": len(ordered), "quartile_probability": [round(ordered[q][0], 3), round(ordered[-q][0], 3)],
           "absent_least_confident_quarter": round(low, 3), "absent_most_confident_quarter": round(high, 3),
           "ratio": round(low / high, 2) if high else None}
    for threshold in THRESHOLDS:
        under = [w for w in ordered if w[0] < threshold]
        over = [w for w in ordered if w[0] >= threshold]
        out[f"under_{threshold}"] = {"share": round(len(under) / len(ordered), 3), "absent": round(rate(under), 3),
                                     "absent_at_or_over": round(rate(over), 3)}
    return out


def measure(translator, pairs: list[tuple[str, str]]) -> dict:
    import sacrebleu

    sources = [s for s, _ in pairs]
    start = time.perf_counter()
    confident = translator.translate_with_confidence(sources)
    seconds = time.perf_counter() - start
    plain = translator.translate(sources)
    assert [c.translation for c in confident] == plain, "translate_with_confidence must give translate's text"
    chrf = [sacrebleu.sentence_chrf(c.translation, [ref]).score for c, (_, ref) in zip(confident, pairs)]
    sentence = {name: spearman([rule(c) for c in confident], chrf) for name, rule in SENTENCE_RULES.items()}
    word = {}
    for name, rule in WORD_RULES.items():
        scored = []
        for c, (_, ref) in zip(confident, pairs):
            reference = {bare(w) for w in ref.split()}
            scored += [(rule(w.log_probs), bare(w.text) not in reference) for w in c.words if bare(w.text)]
        word[name] = absent_rates(scored)
    return {"lines": len(pairs), "seconds_with_confidence": round(seconds, 1),
            "corpus_chrf": round(sacrebleu.corpus_chrf([c.translation for c in confident], [[r for _, r in pairs]]).score, 2),
            "spearman_confidence_vs_sentence_chrf": sentence, "words_absent_from_reference": word}


def sample(path: Path, lines: int, reverse: bool) -> list[tuple[str, str]]:
    rows = [line.rstrip("\n").split("\t") for line in path.read_text(encoding="utf-8").splitlines() if "\t" in line]
    rows = [(b, a) if reverse else (a, b) for a, b in rows]
    step = max(len(rows) / lines, 1.0)
    return [rows[int(i * step)] for i in range(min(lines, len(rows)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sets", nargs="+", default=SETS)
    ap.add_argument("--lines", type=int, default=300, help="lines per set and direction, evenly spaced")
    ap.add_argument("--json", default=str(REPO / "bench" / "results" / "confidence.json"))
    args = ap.parse_args()
    from crossattn.translator import Translator

    results = []
    for direction in ("en-fr", "fr-en"):
        translator = Translator.load(direction, threads=1)
        for name in args.sets:
            path = DATA / name
            if not path.exists():
                print(f"{name}: not found under {DATA}, skipped", file=sys.stderr)
                continue
            row = {"direction": direction, "set": name, "dtype": translator.dtype,
                   **measure(translator, sample(path, args.lines, reverse=direction == "fr-en"))}
            results.append(row)
            s = row["spearman_confidence_vs_sentence_chrf"]["geometric_mean"]
            w = row["words_absent_from_reference"]["product"]
            print(f"{direction} {name}: spearman {s['rho']} {s['ci95']}, absent {w['absent_least_confident_quarter']} "
                  f"vs {w['absent_most_confident_quarter']} (x{w['ratio']})", flush=True)
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    out = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "cpu": cpu, "cores": os.cpu_count(),
           "load_avg_start": os.getloadavg(), "threads": 1, "lines_per_set": args.lines, "thresholds": THRESHOLDS,
           "results": results}
    write_text_atomic(Path(args.json), json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
