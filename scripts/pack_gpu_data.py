"""Pack the general-domain mix for one GPU run (scripts/train_general_gpu.sh): filtered
pairs of each source, cut to a fixed count, xz-compressed into an ignored folder that the
device call carries (the whole travelling tree is at most 64 MiB: check `du -sh`).

    python scripts/pack_gpu_data.py .gpu/data [--scale 1.0]

The counts below are the mix of configs/en-fr-general.toml, larger: on an H200 a 23M
model sees ~100M target tokens in 9 minutes, several epochs of this.
"""

from __future__ import annotations

import argparse
import lzma
import random
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA = REPO.parent / "shared" / "data"

# source file -> pairs kept (after the same filters as training: length, ratio, looks_clean)
MIX = {
    "tatoeba/train.tsv.gz": None,  # all
    "multi30k/train.tsv.gz": None,
    "wmt/news_2008_2011.tsv": None,
    "hansard/train.tsv.gz": 300_000,
    "laws/train.tsv.gz": 40_000,
    "extra/software/debian_descriptions.tsv.gz": 30_000,
    "extra/software/python_docs.tsv.gz": None,
}
DEV = ["tatoeba/dev.tsv", "wmt/newstest2012.tsv", "hansard/dev.tsv"]


def main() -> None:
    from crossattn.data import load_corpus, looks_clean

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path)
    p.add_argument("--scale", type=float, default=1.0, help="multiply the counts (0.01 for a CPU try)")
    a = p.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(1)
    for name, count in MIX.items():
        pairs, stats = load_corpus([DATA / name], keep=looks_clean)
        if count is not None or a.scale != 1.0:
            n = min(len(pairs), int((count or len(pairs)) * a.scale))
            pairs = rng.sample(pairs, n)
        target = a.out / (name.replace("/", "_").removesuffix(".gz").removesuffix(".tsv") + ".tsv.xz")
        with lzma.open(target, "wt", encoding="utf-8", preset=9) as f:
            f.writelines(f"{s}\t{t}\n" for s, t in pairs)
        print(f"{name}: {stats.summary()} -> {len(pairs):,} pairs, {target.stat().st_size / 1e6:.1f} MB", flush=True)
    for name in DEV:
        shutil.copyfile(DATA / name, a.out / name.replace("/", "_"))
    # the dev mix the trainer scores every evaluation on (as configs/en-fr-general.toml)
    sets = [(DATA / n).read_text(encoding="utf-8").splitlines()[:400] for n in DEV]
    (a.out / "devmix.tsv").write_text("".join(r + "\n" for rows in zip(*sets) for r in rows), encoding="utf-8")


if __name__ == "__main__":
    main()
