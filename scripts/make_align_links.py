"""The training links of the alignment heads (``crossattn align-head --links FILE``).

eflomal (PyPI) aligns N Hansard training pairs (and, with ``--extra FILE@N``, the first N
pairs of other training files, for more varied text), tokenized like the Hansards gold set
(bench/alignment.py: tokenize_like), in both directions; grow-diag-final-and joins them.
One line per pair: ``source tokens<TAB>target tokens<TAB>i-j links`` (English first); with
``--extra``, in a fixed shuffled order so that ``align-head --pairs`` samples every source.
No gold sentence is in the file: the heads never see a test or selection set.

    python scripts/make_align_links.py .data/hansard100k.align.tsv --pairs 100000
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO))

from alignment import eflomal_links, first_pairs, hansard_pairs, tokenize_like  # noqa: E402

from crossattn.alignment_text import format_links  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="links file to write (TSV)")
    parser.add_argument("--pairs", type=int, default=100_000, help="Hansard training pairs to align")
    parser.add_argument("--extra", action="append", default=[], metavar="FILE@N",
                        help="also align the first N pairs of this training file (repeatable)")
    args = parser.parse_args()
    pairs = hansard_pairs(args.pairs)
    for spec in args.extra:
        path, _, n = spec.rpartition("@")
        if not path or not n.isdigit():
            raise SystemExit(f"--extra {spec}: expected FILE@N")
        pairs += first_pairs(path, int(n))
    if args.extra:  # mixed sources: a fixed shuffle, so that align-head --pairs samples each
        random.Random(0).shuffle(pairs)
    src = [tokenize_like(en, "en", "hansards") for en, _ in pairs]
    tgt = [tokenize_like(fr, "fr", "hansards") for _, fr in pairs]
    start = time.perf_counter()
    links = eflomal_links(src, tgt)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        for s, t, link in zip(src, tgt, links):
            if s and t:
                f.write(f"{s}\t{t}\t{format_links(link)}\n")
    print(f"{args.out}: {len(pairs):,} pairs aligned in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
