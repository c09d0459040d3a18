"""Sentences written in capitals: what sentence casing them gives, with and without the
names' capitals put back from the vocabulary (modeldir.capitalized).

A sentence in capitals is translated in sentence case and given back in capitals
(modeldir.SourceText). Lower-casing every word also lower-cases the names ("MONDAY" ->
"monday", which the shipped en-fr model translated "jeudi"); the shipped rule gives a word
its capital back when the vocabulary holds its capitalized form in fewer pieces. On dev
sets (newstest2012, hansard/dev; never a test set), each source is translated as written,
and in capitals under both rules; reported: BLEU of the capitals' translations against the
references (all lower-cased), chrF against the translation of the sentence as written
(lower-cased), and how many come out exactly as that translation in capitals.

    .venv/bin/python bench/shouted.py [--sentences 300] [--json bench/results/shouted.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

from common import machine_info  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
SETS = {"newstest2012": DATA / "wmt" / "newstest2012.tsv", "hansard/dev": DATA / "hansard" / "dev.tsv"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sentences", type=int, default=300, help="per set and direction (sources of 4+ words)")
    ap.add_argument("--json", default=str(ROOT / "bench" / "results" / "shouted.json"))
    args = ap.parse_args()

    import sacrebleu

    from crossattn import modeldir
    from crossattn.translator import Translator

    shipped = modeldir.capitalized
    rules = {"sentence case": lambda tokenizer, word: False, "names' capitals back (shipped)": shipped}
    results = {"machine": machine_info(0), "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "runs": []}
    for direction in ("en-fr", "fr-en"):
        translator = Translator(direction, device="cpu")
        column = 0 if direction.startswith("en") else 1
        for name, path in SETS.items():
            rows = [line.rstrip("\n").split("\t") for line in path.open(encoding="utf-8", errors="replace")]
            rows = [r for r in rows if len(r) >= 2 and len(r[column].split()) >= 4][: args.sentences]
            sources, references = [r[column] for r in rows], [r[1 - column].lower() for r in rows]
            as_written = translator.translate(sources)
            run = {"direction": direction, "set": name, "sentences": len(sources),
                   "as written: BLEU": round(sacrebleu.corpus_bleu([t.lower() for t in as_written],
                                                                   [references]).score, 2)}
            try:
                for label, rule in rules.items():
                    modeldir.capitalized = rule
                    start = time.perf_counter()
                    shouted = translator.translate([s.upper() for s in sources])
                    run[label] = {
                        "BLEU": round(sacrebleu.corpus_bleu([t.lower() for t in shouted], [references]).score, 2),
                        "chrF vs as written": round(sacrebleu.corpus_chrf(
                            [t.lower() for t in shouted], [[t.lower() for t in as_written]]).score, 2),
                        "same as written, in capitals": sum(s == t.upper() for s, t in zip(shouted, as_written)),
                        "seconds": round(time.perf_counter() - start, 1)}
            finally:
                modeldir.capitalized = shipped
            print(json.dumps(run), flush=True)
            results["runs"].append(run)
    results["finished"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
