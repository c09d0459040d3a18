"""The word counts that language detection adds to py3langid's (crossattn/detect.py):
how often each word occurs on the English and the French side of training data.

Sources: the training splits only (no dev or test sentence, so bench/detection.py's
measurements stay held out): tatoeba/train, multi30k/train, the first 200k pairs of
hansard/train, wmt/news_2008_2011 and the first 50k pairs of the Debian package
descriptions: conversation, captions, parliament, news and software. Words seen fewer
than ``--min-count`` times in both languages are dropped (names, typos).

    python scripts/make_detect_words.py [--out crossattn/detect_words.tsv.gz] [--min-count 10]
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import os
import sys
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from crossattn.detect import WORDS_FILE, words

DATA = REPO.parent / "shared" / "data"
SOURCES = [("tatoeba/train.tsv.gz", None), ("multi30k/train.tsv.gz", None), ("hansard/train.tsv.gz", 200_000),
           ("wmt/news_2008_2011.tsv", None), ("extra/software/debian_descriptions.tsv.gz", 50_000)]


def count_words(sources: list[tuple[str, int | None]]) -> tuple[Counter, Counter]:
    english, french = Counter(), Counter()
    for name, limit in sources:
        path = DATA / name
        with (gzip.open if name.endswith(".gz") else open)(path, "rt", encoding="utf-8") as f:
            for line in itertools.islice(f, limit):
                cols = line.rstrip("\n").split("\t")
                if len(cols) >= 2:
                    english.update(words(cols[0]))
                    french.update(words(cols[1]))
    return english, french


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(WORDS_FILE))
    p.add_argument("--min-count", type=int, default=10)
    args = p.parse_args()
    english, french = count_words(SOURCES)
    kept = sorted(w for w in english.keys() | french.keys() if max(english[w], french[w]) >= args.min_count)
    text = "word\ten\tfr\n" + "".join(f"{w}\t{english[w]}\t{french[w]}\n" for w in kept)
    out = Path(args.out)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(gzip.compress(text.encode("utf-8"), compresslevel=9, mtime=0))  # mtime 0: the same bytes each run
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, out)
    print(f"{out}: {len(kept)} words ({sum(english.values())} English and {sum(french.values())} French "
          f"words counted), {out.stat().st_size} bytes")


if __name__ == "__main__":
    main()
