"""Pack the general-domain mix for one GPU run (scripts/train_general_gpu.sh): filtered
pairs of each source, cut to a fixed count, xz-compressed into an ignored folder that the
device call carries (the whole travelling tree is at most 64 MiB: scripts/gpu_run.py check).

    python scripts/pack_gpu_data.py .gpu/data [--scale 1.0] [--guided 200000]

What it writes, and why:
- ``<source>.tsv.xz``: the pairs of each source, after the training filters (length,
  ratio, ``looks_clean``; interface and help text keeps its short labels, without menu
  accelerators) and the training text rules (``percent_sign``), so the links below match
  the text the trainer reads. The trainer's own ``clean_filter`` is off in
  configs/general-gpu.toml for that reason.
- ``guided.tsv.xz``: ``source<TAB>target<TAB>links`` for a random sample of those pairs
  (taken out of their source files, so nothing is seen twice), linked by eflomal
  (grow-diag-final-and) over crossattn.guided's words: the guided-alignment loss reads them.
- ``ui_dev.tsv``: interface and help strings held out of training (by a hash of the English
  side, so one English string never lands on both sides): a dev set for the text users meet
  first. The dev sets ``tatoeba_dev.tsv``, ``wmt_newstest2012.tsv``, ``hansard_dev.tsv`` are
  copied beside it, and ``devmix.tsv`` interleaves 400 lines of each of the four: what the
  trainer scores every evaluation on.

The counts are the mix of configs/en-fr-general.toml, larger: on an H200 a 23M model sees
~100M target tokens in 9 minutes, several epochs of this.
"""

from __future__ import annotations

import argparse
import hashlib
import lzma
import random
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO))
DATA = REPO.parent / "shared" / "data"

# source file -> pairs kept (after the filters), None = all
MIX = {
    "tatoeba/train.tsv.gz": None,
    "multi30k/train.tsv.gz": None,
    "wmt/news_2008_2011.tsv": None,
    "hansard/train.tsv.gz": 300_000,
    "laws/train.tsv.gz": 40_000,
    "extra/software/debian_descriptions.tsv.gz": 30_000,
    "extra/software/python_docs.tsv.gz": None,
}
# interface and help text (menus, dialogs, messages, help pages, games): short labels kept
UI_MIX = [
    "extra/docs/libreoffice_ui.tsv.gz", "extra/docs/libreoffice_help.tsv.gz", "extra/docs/gimp_help.tsv.gz",
    "extra/docs/gnome_help.tsv.gz", "extra/docs/debian_handbook.tsv.gz",
    "extra/games/wesnoth.tsv.gz", "extra/games/freedroidrpg.tsv.gz", "extra/games/cataclysm.tsv.gz",
    "extra/games/widelands.tsv.gz", "extra/games/freeciv_ufoai.tsv.gz",
]
DEV = ["tatoeba/dev.tsv", "wmt/newstest2012.tsv", "hansard/dev.tsv"]
UI_DEV_SHARE, UI_DEV_MAX = 100, 1000  # one English string in 100 is held out, at most 1,000 pairs
UI_DEV_WORDS = 12  # of which the dev set takes the interface-sized ones


def held_out(english: str) -> bool:
    """The UI dev split: a fixed hash of the lowercased English side."""
    return int(hashlib.sha1(english.lower().encode()).hexdigest(), 16) % UI_DEV_SHARE == 0


def packed_name(source: str) -> str:
    return source.replace("/", "_").removesuffix(".gz").removesuffix(".tsv") + ".tsv.xz"


def write_xz(path: Path, lines) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with lzma.open(tmp, "wt", encoding="utf-8", preset=9) as f:
        f.writelines(lines)
    tmp.replace(path)


def main() -> None:
    from alignment import eflomal_links  # bench/alignment.py: eflomal both ways, grow-diag-final-and

    from crossattn.alignment_text import format_links
    from crossattn.data import load_corpus, looks_clean, percent_sign, strip_accelerators
    from crossattn.guided import aligner_words

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path)
    p.add_argument("--scale", type=float, default=1.0, help="multiply the counts (0.005 for a CPU try)")
    p.add_argument("--guided", type=int, default=200_000, help="pairs given eflomal links (times --scale)")
    a = p.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"pack_gpu_data.py: {DATA} not found (the data lives in ../shared/data)")
    a.out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(1)
    packed: dict[str, list[tuple[str, str]]] = {}
    for name, count in MIX.items():
        pairs, stats = load_corpus([DATA / name], keep=looks_clean)
        if count is not None or a.scale != 1.0:
            pairs = rng.sample(pairs, min(len(pairs), int((count or len(pairs)) * a.scale)))
        packed[name] = pairs
        print(f"{name}: {stats.summary()} -> {len(pairs):,} pairs", flush=True)
    ui_dev: list[tuple[str, str]] = []
    for name in UI_MIX:
        pairs, stats = load_corpus([DATA / name])
        pairs = [(strip_accelerators(s), strip_accelerators(t)) for s, t in pairs]
        pairs = [(s, t) for s, t in pairs if looks_clean(s, t, labels=True)]
        ui_dev += [pr for pr in pairs if held_out(pr[0])]
        pairs = [pr for pr in pairs if not held_out(pr[0])]
        if a.scale != 1.0:
            pairs = rng.sample(pairs, int(len(pairs) * a.scale))
        packed[name] = pairs
        print(f"{name}: {stats.summary()} -> {len(pairs):,} pairs (labels kept, accelerators removed)", flush=True)
    packed = {name: [(percent_sign(s), percent_sign(t)) for s, t in pairs] for name, pairs in packed.items()}

    # the guided sample, taken out of the source files
    everything = [(name, k) for name, pairs in packed.items() for k in range(len(pairs))]
    picked = set(rng.sample(everything, min(len(everything), int(a.guided * a.scale))))
    guided = [packed[name][k] for name, k in sorted(picked)]
    rng.shuffle(guided)
    start = time.perf_counter()
    links = eflomal_links([aligner_words(s) for s, _ in guided], [aligner_words(t) for _, t in guided])
    write_xz(a.out / "guided.tsv.xz", (f"{s}\t{t}\t{format_links(x)}\n" for (s, t), x in zip(guided, links)))
    print(f"guided.tsv.xz: {len(guided):,} pairs linked by eflomal in {time.perf_counter() - start:.0f} s", flush=True)
    for name, pairs in packed.items():
        keep = [pr for k, pr in enumerate(pairs) if (name, k) not in picked]
        target = a.out / packed_name(name)
        write_xz(target, (f"{s}\t{t}\n" for s, t in keep))
        print(f"{target.name}: {len(keep):,} pairs, {target.stat().st_size / 1e6:.1f} MB", flush=True)

    random.Random(2).shuffle(ui_dev)
    ui_dev = [pr for pr in ui_dev if len(pr[0].split()) <= UI_DEV_WORDS][:UI_DEV_MAX]  # strings, not help pages
    (a.out / "ui_dev.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in ui_dev), encoding="utf-8")
    for name in DEV:
        shutil.copyfile(DATA / name, a.out / name.replace("/", "_"))
    sets = [(DATA / n).read_text(encoding="utf-8").splitlines()[:400] for n in DEV]
    sets.append([f"{s}\t{t}" for s, t in ui_dev[:400]])
    (a.out / "devmix.tsv").write_text("".join(r + "\n" for rows in zip(*sets) for r in rows), encoding="utf-8")
    total = sum(f.stat().st_size for f in a.out.iterdir())
    print(f"{a.out}: {total / 2**20:.1f} MiB in all; ui_dev.tsv: {len(ui_dev):,} held-out interface pairs")


if __name__ == "__main__":
    main()
