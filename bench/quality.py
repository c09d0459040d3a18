"""Translation quality of a model directory on every public dev and test set, as the model
card reports it: sacrebleu BLEU and chrF (defaults, untouched references), and how many
outputs loop (a word or a piece repeated 4+ times in a row). Short inputs are scored apart
too (issue 28): BLEU on the sources of at most SHORT_WORDS words, and loops on those of 1-3
words, where three in a row already count ("John" -> "John John John").

    python bench/quality.py --model crossattn/pretrained/en-fr [--model runs/x/model ...]
        [--sets dev|test|all] [--split] [--json out.json] [--hyps DIR]

The direction comes from each model's config.json ("languages"); for fr->en the TSV
columns are swapped. Dev sets are where settings are chosen; test sets are only reported.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from crossattn.atomic import write_text_atomic  # noqa: E402

DATA = REPO.parent / "shared" / "data"

DEV = ["tatoeba/dev.tsv", "multi30k/val.tsv", "wmt/newstest2012.tsv", "hansard/dev.tsv"]
SHORT_WORDS = 4  # "short" sources for the BLEU of short inputs; loops are counted on 1-3 words
SHORT_LOOP = 3  # repeats in a row that make a loop on those
TEST = ["tatoeba/test.tsv", "multi30k/test_2016_flickr.tsv", "multi30k/test_2017_flickr.tsv",
        "multi30k/test_2017_mscoco.tsv", "multi30k/test_2018_flickr.tsv", "wmt/newstest2013.tsv"]


def loops(text: str, pieces: list[str], n: int = 4) -> bool:
    """A word, or a SentencePiece piece, repeated ``n`` or more times in a row."""
    words = re.findall(r"\w+|[^\w\s]", text.lower())
    for seq in (words, pieces):
        run = 1
        for a, b in zip(seq, seq[1:]):
            run = run + 1 if a == b else 1
            if run >= n:
                return True
    return False


def evaluate(model: str, sets: list[str], beam: int | None, dtype: str, split: bool = False,
             hyps_dir: Path | None = None) -> list[dict]:
    import sacrebleu

    from crossattn.translator import Translator

    tr = Translator.load(model, dtype=dtype, threads=1)
    reverse = tr.direction == "fr-en"
    rows = []
    for name in sets:
        path = DATA / name
        if not path.exists():
            continue
        pairs = [line.split("\t")[:2] for line in path.read_text(encoding="utf-8").splitlines() if "\t" in line]
        src, ref = ([t for _, t in pairs], [s for s, _ in pairs]) if reverse else ([s for s, _ in pairs], [t for _, t in pairs])
        t0 = time.perf_counter()
        hyp = tr.translate(src, beam=beam, split_sentences=split)
        seconds = time.perf_counter() - t0
        looping = [loops(h, tr.tokenizer.pieces(h)) for h in hyp]
        # on a 1-3 word input three in a row is already a loop ("John" -> "John John John")
        looping_short = [loops(h, tr.tokenizer.pieces(h), SHORT_LOOP) for h in hyp]
        words = [len(s.split()) for s in src]
        short = [i for i, n in enumerate(words) if n <= SHORT_WORDS]
        rows.append({"model": model, "direction": tr.direction, "set": name, "split": split, "sentences": len(src),
                     "bleu": round(sacrebleu.corpus_bleu(hyp, [ref]).score, 2),
                     "chrf": round(sacrebleu.corpus_chrf(hyp, [ref]).score, 2), "loops": sum(looping),
                     f"short_sentences_le{SHORT_WORDS}": len(short),
                     f"short_bleu_le{SHORT_WORDS}": round(sacrebleu.corpus_bleu([hyp[i] for i in short],
                                                                               [[ref[i] for i in short]]).score, 2)
                     if short else None,
                     "sentences_1_3_words": sum(1 <= n <= 3 for n in words),
                     "loops_1_3_words": sum(looping_short[i] for i, n in enumerate(words) if 1 <= n <= 3),
                     "seconds": round(seconds, 1)})
        if hyps_dir is not None:
            hyps_dir.mkdir(parents=True, exist_ok=True)
            out = hyps_dir / f"{tr.direction}-{name.replace('/', '_').removesuffix('.tsv')}.txt"
            write_text_atomic(out, "".join(h + "\n" for h in hyp))
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", action="append", required=True)
    p.add_argument("--sets", choices=("dev", "test", "all"), default="dev")
    p.add_argument("--only", nargs="*", help="set files (relative to ../shared/data) instead of --sets")
    p.add_argument("--beam", type=int)
    p.add_argument("--dtype", default="auto")
    p.add_argument("--split", action="store_true", help="split lines into sentences and clauses as `crossattn "
                   "translate` does (default: each line one unit, as `crossattn evaluate`)")
    p.add_argument("--json")
    p.add_argument("--hyps", type=Path, help="write each set's translations to DIR/DIRECTION-SET.txt")
    a = p.parse_args()
    sets = a.only or {"dev": DEV, "test": TEST, "all": DEV + TEST}[a.sets]
    rows = [r for m in a.model for r in evaluate(m, sets, a.beam, a.dtype, a.split, a.hyps)]
    print(f"| model | direction | set | BLEU | chrF | loops | BLEU <= {SHORT_WORDS} words | loops on 1-3 words |\n"
          "|---|---|---|---|---|---|---|---|")
    for r in rows:
        short = r[f"short_bleu_le{SHORT_WORDS}"]
        print(f"| {r['model']} | {r['direction']} | {r['set']} ({r['sentences']:,}) | {r['bleu']:.2f} | {r['chrf']:.2f} "
              f"| {r['loops']} | {'-' if short is None else f'{short:.2f}'} ({r[f'short_sentences_le{SHORT_WORDS}']:,}) "
              f"| {r['loops_1_3_words']} of {r['sentences_1_3_words']:,} |")
    if a.json:
        write_text_atomic(Path(a.json), json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
