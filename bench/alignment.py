"""Word alignment side by side on the public gold sets (../shared/data/align): crossattn's
aligner vs eflomal (PyPI) vs the naive read-out, AER / precision / recall and pairs per
second, in one run.

eflomal is a statistical aligner: it needs many sentence pairs to learn from. It gets the
same text our models were trained on, as statistics: N Hansard pairs (default 300k) plus
the gold sentences, lowercased and tokenized like each gold set (tokenize_like). Its two
directions are symmetrized with grow-diag-final-and, like ours.

    python bench/alignment.py [--pairs 300000] [--json bench/results/alignment.json]

``eflomal_links`` is also how the alignment heads' training links are made
(scripts/make_align_links.py, then ``crossattn align-head``).
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA = REPO.parent / "shared" / "data"
GOLD_SETS = {"hansards_trial": "hansards_wpt03_trial", "golden": "golden_collection_enfr"}

# -- text like the gold sets ----------------------------------------------------------
_PUNCT = re.compile(r"([,.;:!?()\[\]\"«»“”…%])")
_EXPANDED = {"du": "de le", "des": "de les", "au": "à le", "aux": "à les"}
_ELISION = re.compile(r"\b(j|l|d|n|qu|s|c|m|t|jusqu|lorsqu|puisqu|quoiqu)'", re.IGNORECASE)
_FULL = {"j": "je", "l": "le", "d": "de", "n": "ne", "qu": "que", "s": "se", "c": "ce", "m": "me", "t": "te",
         "jusqu": "jusque", "lorsqu": "lorsque", "puisqu": "puisque", "quoiqu": "quoique"}


def tokenize_like(text: str, lang: str, style: str) -> str:
    """Lowercased, punctuation and hyphens split off, and French written as each gold set
    writes it: Hansards expand contractions and elisions ("du" -> "de le", "j'ai" -> "je ai"),
    the Golden Collection splits elisions ("l ' élargissement") and keeps "du"."""
    text = text.lower().replace("’", "'")
    if lang == "fr":
        if style == "hansards":
            text = _ELISION.sub(lambda m: _FULL[m.group(1)] + " ", text)
        else:
            text = _ELISION.sub(lambda m: m.group(1) + " ' ", text)
    elif lang == "en":
        text = re.sub(r"n't\b", " n't", text)
        text = re.sub(r"'(s|re|ve|ll|d|m)\b", r" '\1", text)
    text = _PUNCT.sub(r" \1 ", text)
    text = re.sub(r"(?<=\w)-(?=\w)", " - ", text)
    words = text.split()
    if lang == "fr" and style == "hansards":
        words = " ".join(_EXPANDED.get(w, w) for w in words).split()
    return " ".join(words)


def read_gold(name: str):
    from crossattn.alignment_text import read_links

    folder = DATA / "align" / GOLD_SETS[name]
    en = (folder / "en.txt").read_text(encoding="utf-8").splitlines()
    fr = (folder / "fr.txt").read_text(encoding="utf-8").splitlines()
    return en, fr, read_links(str(folder / "gold.talp"))


def first_pairs(path: str | Path, n: int) -> list[tuple[str, str]]:
    """The first n English-French pairs of a TSV (or .tsv.gz) training file."""
    pairs = []
    with (gzip.open if str(path).endswith(".gz") else open)(path, "rt", encoding="utf-8") as f:
        for line in f:
            en, _, fr = line.rstrip("\n").partition("\t")
            if en and fr:
                pairs.append((en, fr))
            if len(pairs) >= n:
                break
    return pairs


def hansard_pairs(n: int) -> list[tuple[str, str]]:
    return first_pairs(DATA / "hansard" / "train.tsv.gz", n)


def eflomal_links(src: list[str], tgt: list[str]) -> list[set[tuple[int, int]]]:
    """Symmetrized (grow-diag-final-and) eflomal links for tokenized lines."""
    import eflomal

    from crossattn.align import grow_diag_final
    from crossattn.alignment_text import parse_links

    with tempfile.TemporaryDirectory() as tmp:
        fwd, rev = Path(tmp) / "fwd", Path(tmp) / "rev"
        eflomal.Aligner().align(src, tgt, links_filename_fwd=str(fwd), links_filename_rev=str(rev), quiet=True)
        forward = [parse_links(line)[0] for line in fwd.read_text().splitlines()]
        backward = [parse_links(line)[0] for line in rev.read_text().splitlines()]
    return [grow_diag_final(f, b) for f, b in zip(forward, backward)]


def run_eflomal(name: str, n_pairs: int) -> dict:
    from crossattn.align import score

    en, fr, gold = read_gold(name)
    style = "hansards" if name.startswith("hansards") else "golden"
    extra = hansard_pairs(n_pairs)
    src = en + [tokenize_like(e, "en", style) for e, _ in extra]
    tgt = fr + [tokenize_like(f, "fr", style) for _, f in extra]
    start = time.perf_counter()
    links = eflomal_links(src, tgt)[: len(en)]
    seconds = time.perf_counter() - start
    s = score(gold, links)
    return {"method": f"eflomal ({n_pairs:,} Hansard pairs + gold, grow-diag-final-and)", "set": name,
            "aer": 100 * s.aer, "precision": 100 * s.precision, "recall": 100 * s.recall,
            "pairs_per_s": len(src) / seconds, "seconds": seconds}


def run_ours(name: str, args: list[str], label: str) -> dict:
    """`crossattn align` as a user runs it (both directions when it has them), timed whole."""
    import subprocess

    from crossattn.align import score
    from crossattn.alignment_text import read_links

    folder = DATA / "align" / GOLD_SETS[name]
    _, _, gold = read_gold(name)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "links.txt"
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "crossattn", "align", "-i", f"{folder / 'en.txt'}:{folder / 'fr.txt'}",
                        "-o", str(out), *args], check=True, cwd=REPO)
        seconds = time.perf_counter() - start
        pred = [links for links, _ in read_links(str(out))]
    s = score(gold, pred)
    return {"method": label, "set": name, "aer": 100 * s.aer, "precision": 100 * s.precision,
            "recall": 100 * s.recall, "pairs_per_s": len(gold) / seconds, "seconds": seconds}


def warm_speed(name: str, rounds: int = 3) -> float:
    """Pairs/s of the default pipeline (natural text, both directions' heads, symmetrized)
    with the models already loaded: the median of ``rounds`` passes over the gold set."""
    from crossattn.align import AlignmentModel, align_pairs_with_heads
    from crossattn.alignment_text import read_token_pairs

    folder = DATA / "align" / GOLD_SETS[name]
    pairs = read_token_pairs(f"{folder / 'en.txt'}:{folder / 'fr.txt'}")
    forward, backward = AlignmentModel.load("en-fr", dtype="auto"), AlignmentModel.load("fr-en", dtype="auto")
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        align_pairs_with_heads(pairs, forward, backward)
        times.append(time.perf_counter() - start)
    return len(pairs) / sorted(times)[rounds // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=300_000, help="Hansard pairs eflomal learns from")
    parser.add_argument("--json", help="write the rows here too")
    args = parser.parse_args()
    rows = []
    for name in GOLD_SETS:
        rows.append(run_ours(name, ["--method", "attention"], "naive read-out (mean of layers and heads, en-fr only)"))
        rows.append({**run_ours(name, [], "crossattn align (default)"), "warm_pairs_per_s": warm_speed(name)})
        rows.append(run_eflomal(name, args.pairs))
    print("| set | method | AER | precision | recall | pairs/s (whole run) | pairs/s (loaded) |\n"
          "|---|---|---|---|---|---|---|")
    for r in rows:
        warm = f"{r['warm_pairs_per_s']:.0f}" if "warm_pairs_per_s" in r else ""
        print(f"| {r['set']} | {r['method']} | {r['aer']:.1f} | {r['precision']:.1f} | {r['recall']:.1f} "
              f"| {r['pairs_per_s']:.0f} | {warm} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
