"""The one GPU run's CPU side: what travels, what comes back, and what gets shipped.

    python scripts/gpu_run.py check [--carry .gpu/data] [--returned DIR]   # before the call
    python scripts/gpu_run.py stash | unstash      # the shipped weights out of the tree and back
    python scripts/gpu_run.py pack-return WORK OUT # on the device: both models as int8 parts
    python scripts/gpu_run.py after FILES_DIR [--data .gpu/data] [--ship]   # after the call
    python scripts/gpu_run.py roundtrip MODEL_DIR [--limit N]   # what the int8 return costs

The device tool (its README) sends the working tree: tracked files, untracked files git
does not ignore, and the `carry` paths, 64 MiB at most; it brings back at most 8 files of
$OUT, 16 MiB each, 64 MiB together, named in letters, digits, '.', '_' and '-', at most two
folders down. The shipped weights alone are 83 MB (stash moves them to the ignored .gpu/stash
for the call), and the two new models are 93 MB in fp16, so they come back as int8 with one
scale per row (pack-return), 47 MB: CTranslate2's int8, which serves them on a CPU, uses the
same per-row absmax scales, so re-quantizing those weights gives the same integers.

`after` rebuilds each returned model, scores it and the shipped one on every dev set
(tatoeba/dev, multi30k/val, newstest2012, hansard/dev and the held-out interface strings of
the pack), and ships a direction only if its new model wins: a higher mean BLEU over the dev
sets and no dev set more than MAX_LOSS BLEU worse. A shipped model then gets alignment heads
trained on the pack's links, and both read-outs (the heads; the guided head of the model's
own cross-attention) are scored on the two gold sets. Every decision is printed.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA = REPO.parent / "shared" / "data"

MiB = 2**20
SEND_LIMIT = 64 * MiB
BACK_FILES, BACK_FILE_LIMIT, BACK_LIMIT = 8, 16 * MiB, 64 * MiB
PART = 15 * MiB
NAME = re.compile(r"^[A-Za-z0-9._-]+$")
DIRECTIONS = ("en-fr", "fr-en")
DEV_SETS = ["tatoeba/dev.tsv", "multi30k/val.tsv", "wmt/newstest2012.tsv", "hansard/dev.tsv"]
GOLD = {"hansards_trial": "align/hansards_wpt03_trial", "golden": "align/golden_collection_enfr"}
MAX_LOSS = 1.0  # BLEU a new model may lose on one dev set while winning on the mean
STASH = REPO / ".gpu" / "stash"


def step(name: str):
    """Print a step's name, then (on exit) how long it took: the header of
    train_general_gpu.sh quotes these times from the CPU dry run."""
    class Timer:
        def __enter__(self):
            self.start = time.perf_counter()
            print(f"== {name}", flush=True)

        def __exit__(self, *exc):
            print(f"== {name}: {time.perf_counter() - self.start:.0f} s", flush=True)
    return Timer()


# -- what travels --------------------------------------------------------------------------
def travelling_files(carry: list[Path]) -> dict[str, list[tuple[Path, int]]]:
    """The files the device tool sends, by kind, with sizes (symbolic links as links)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, check=True).stdout.decode().split("\0")
    tracked = set(subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True,
                                 check=True).stdout.decode().split("\0"))
    out: dict[str, list[tuple[Path, int]]] = {"tracked": [], "untracked": [], "carried": [], "shared": []}
    for name in filter(None, listed):
        path = REPO / name
        if path.is_symlink() or path.is_file():
            out["tracked" if name in tracked else "untracked"].append((path, path.lstat().st_size))
    for kind, roots in (("carried", carry), ("shared", [REPO / "shared"])):
        for root in roots:
            root = root if root.is_absolute() else REPO / root
            files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else []
            out[kind] += [(p, p.lstat().st_size) for p in files]
    return out


def returned_problems(folder: Path) -> tuple[int, list[str]]:
    """Bytes under ``folder`` and what in it the device tool would not bring back."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    problems, total = [], sum(p.stat().st_size for p in files)
    if len(files) > BACK_FILES:
        problems.append(f"{len(files)} files (at most {BACK_FILES})")
    for p in files:
        rel = p.relative_to(folder)
        if p.stat().st_size > BACK_FILE_LIMIT:
            problems.append(f"{rel}: {p.stat().st_size / MiB:.1f} MiB (at most {BACK_FILE_LIMIT // MiB})")
        if len(rel.parts) > 3 or not all(NAME.match(part) for part in rel.parts):
            problems.append(f"{rel}: too deep or a name the tool refuses")
    if total > BACK_LIMIT:
        problems.append(f"{total / MiB:.1f} MiB in all (at most {BACK_LIMIT // MiB})")
    return total, problems


def estimated_return() -> int:
    """Both directions of configs/general-gpu.toml as int8 parts, plus ~1 MiB of logs."""
    import tomllib

    cfg = tomllib.load(open(REPO / "configs" / "general-gpu.toml", "rb"))
    m, vocab = cfg["model"], cfg["train"]["vocab_size"]
    d, ff = m["d_model"], m["d_ff"]
    encoder = m["encoder_layers"] * (4 * d * d + 2 * d * ff)
    decoder = m["decoder_layers"] * (8 * d * d + 2 * d * ff)
    per_model = vocab * d + encoder + decoder  # int8 bytes; biases, norms and scales add ~1%
    return int(2 * per_model * 1.01) + MiB


def cmd_check(a) -> int:
    files = travelling_files(a.carry)
    if a.assume_stashed:  # the dry run leaves the weights where they are and counts as if stashed
        files["tracked"] = [(p, s) for p, s in files["tracked"]
                            if not (p.name == "model.safetensors" and p.parent.parent.name == "pretrained")]
    sent = sum(size for kind in files.values() for _, size in kind)
    print("sent to the device (the tool's count: tracked + untracked-not-ignored + carried + shared/):")
    for kind, rows in files.items():
        print(f"  {kind:9} {sum(s for _, s in rows) / MiB:7.1f} MiB in {len(rows):,} files")
    for path, size in sorted((r for rows in files.values() for r in rows), key=lambda r: -r[1])[:5]:
        print(f"    {size / MiB:6.1f} MiB  {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")
    ok = sent <= SEND_LIMIT
    print(f"  total     {sent / MiB:7.1f} MiB of {SEND_LIMIT // MiB}: {'fits' if ok else 'TOO LARGE'}")
    if not ok and any("pretrained" in str(p) and p.name == "model.safetensors" for p, _ in files["tracked"]):
        print("  (the shipped weights travel: python scripts/gpu_run.py stash, and unstash after the call)")
    for path in a.carry:
        if not (path if path.is_absolute() else REPO / path).exists():
            print(f"  carried path {path} does not exist (python scripts/pack_gpu_data.py {path})")
            ok = False
    if a.returned:
        back, problems = returned_problems(a.returned)
        print(f"brought back from {a.returned}: {back / MiB:.1f} MiB" + "".join(f"\n  REFUSED: {p}" for p in problems))
        ok = ok and not problems
    else:
        back = estimated_return()
        print(f"brought back (estimated from configs/general-gpu.toml, int8): {back / MiB:.1f} MiB of {BACK_LIMIT // MiB}")
        ok = ok and back <= BACK_LIMIT - BACK_FILE_LIMIT  # room left for the logs' own file
    print("check:", "passed" if ok else "FAILED")
    return 0 if ok else 1


def cmd_stash(a) -> int:
    moved = 0
    for d in DIRECTIONS:
        src, dst = REPO / "crossattn" / "pretrained" / d / "model.safetensors", STASH / d / "model.safetensors"
        if src.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            src.replace(dst)
            moved += 1
    print(f"stashed {moved} shipped weight files in {STASH} (python scripts/gpu_run.py unstash puts them back; "
          "git checkout -- crossattn/pretrained also does)")
    return 0


def cmd_unstash(a) -> int:
    for d in DIRECTIONS:
        src, dst = STASH / d / "model.safetensors", REPO / "crossattn" / "pretrained" / d / "model.safetensors"
        if src.exists() and not dst.exists():
            src.replace(dst)
    missing = [d for d in DIRECTIONS if not (REPO / "crossattn" / "pretrained" / d / "model.safetensors").exists()]
    print("shipped weights back in place" if not missing else f"still missing: {missing} (git checkout -- crossattn/pretrained)")
    return 1 if missing else 0


# -- what comes back -----------------------------------------------------------------------
def to_int8(state: dict) -> dict:
    """Every 2-D float tensor as int8 rows with one fp32 scale each (symmetric absmax);
    the rest (biases, norms: 0.1% of the weights) as they are, fp32."""
    import torch

    out = {}
    for name, t in state.items():
        t = t.float()
        if t.dim() == 2:
            scale = t.abs().amax(dim=1).clamp_min(1e-12) / 127
            out[name] = (t / scale[:, None]).round().clamp(-127, 127).to(torch.int8)
            out[name + ".scale"] = scale
        else:
            out[name] = t
    return out


def from_int8(packed: dict) -> dict:
    import torch

    return {name: (t.float() * packed[name + ".scale"][:, None]) if t.dtype == torch.int8 else t.float()
            for name, t in packed.items() if not name.endswith(".scale")}


def cmd_pack_return(a) -> int:
    """WORK/<direction>/model (the trainer's best) -> OUT/models.tar.part-* and OUT/logs.tgz."""
    from safetensors.torch import load_file, save_file

    work, out = Path(a.work), Path(a.out)
    staging = work / "return"
    shutil.rmtree(staging, ignore_errors=True)
    for d in DIRECTIONS:
        model = work / d / "model"
        if not (model / "model.safetensors").exists():
            print(f"{d}: no model was written ({model}); nothing to bring back for it", file=sys.stderr)
            continue
        (staging / d).mkdir(parents=True)
        save_file(to_int8(load_file(str(model / "model.safetensors"))), str(staging / d / "model.int8.safetensors"))
        for name in ("config.json", "tokenizer.model"):
            shutil.copyfile(model / name, staging / d / name)
    out.mkdir(parents=True, exist_ok=True)
    with tarfile.open(out / "logs.tgz", "w:gz") as tar:
        for d in DIRECTIONS:
            for name in (f"{d}.log", f"{d}/metrics.jsonl", f"{d}/run.json", f"{d}/curves.png"):
                if (work / name).exists():
                    tar.add(work / name, arcname=name)
    blob = work / "models.tar"
    with tarfile.open(blob, "w") as tar:
        tar.add(staging, arcname="models")
    with open(blob, "rb") as f:
        for k, chunk in enumerate(iter(lambda: f.read(PART), b"")):
            (out / f"models.tar.part-{k:02d}").write_bytes(chunk)
    total, problems = returned_problems(out)
    print(f"{out}: {total / MiB:.1f} MiB in {len(list(out.iterdir()))} files" +
          "".join(f"\nREFUSED by the device tool: {p}" for p in problems))
    return 1 if problems else 0


def unpack_returned(files: Path, dest: Path) -> dict[str, Path]:
    """The returned parts -> a model directory per direction (weights dequantized, fp32)."""
    import torch

    from safetensors.torch import load_file

    from crossattn.config import ModelConfig
    from crossattn.model import Seq2SeqTransformer
    from crossattn.modeldir import save_model_dir
    from crossattn.tokenizer import Tokenizer

    parts = sorted(files.glob("models.tar.part-*"))
    if not parts:
        raise SystemExit(f"gpu_run.py after: no models.tar.part-* in {files}")
    dest.mkdir(parents=True, exist_ok=True)
    blob = dest / "models.tar"
    with open(blob, "wb") as f:
        for p in parts:
            f.write(p.read_bytes())
    with tarfile.open(blob) as tar:
        tar.extractall(dest / "int8", filter="data")
    models = {}
    for d in DIRECTIONS:
        src = dest / "int8" / "models" / d
        if not src.is_dir():
            continue
        config = json.loads((src / "config.json").read_text())
        model = Seq2SeqTransformer(ModelConfig.from_dict(config["model"]))
        state = from_int8(load_file(str(src / "model.int8.safetensors")))
        if model.config.tie_output:
            state["output.weight"] = state["embed.tokens.weight"]
        model.load_state_dict(state)
        extra = {k: v for k, v in config.items() if k not in ("model", "decoding", "files")}
        save_model_dir(model, Tokenizer(src / "tokenizer.model"), dest / d, config.get("decoding"),
                       dtype=torch.float32, extra=extra)
        models[d] = dest / d
    return models


def score(model_dir: Path, sets: dict[str, Path], limit: int | None) -> dict[str, dict]:
    """BLEU, chrF and loops per dev set, as bench/quality.py counts them (CTranslate2 int8)."""
    import sacrebleu

    sys.path.insert(0, str(REPO / "bench"))
    from quality import loops

    from crossattn.translator import Translator

    tr = Translator.load(str(model_dir), dtype="int8", threads=1)
    out = {}
    for name, path in sets.items():
        rows = [line.split("\t")[:2] for line in path.read_text(encoding="utf-8").splitlines() if "\t" in line][:limit]
        src, ref = ([t for _, t in rows], [s for s, _ in rows]) if tr.direction == "fr-en" else \
            ([s for s, _ in rows], [t for _, t in rows])
        hyp = tr.translate(src)
        out[name] = {"bleu": round(sacrebleu.corpus_bleu(hyp, [ref]).score, 2),
                     "chrf": round(sacrebleu.corpus_chrf(hyp, [ref]).score, 2),
                     "loops": sum(loops(h, tr.tokenizer.pieces(h)) for h in hyp), "sentences": len(src)}
    return out


def wins(new: dict[str, dict], old: dict[str, dict]) -> tuple[bool, str]:
    mean = lambda s: sum(r["bleu"] for r in s.values()) / len(s)  # noqa: E731
    worst = min(new[k]["bleu"] - old[k]["bleu"] for k in new)
    if mean(new) <= mean(old):
        return False, f"mean dev BLEU {mean(new):.2f} is not above the shipped {mean(old):.2f}"
    if worst < -MAX_LOSS:
        return False, f"mean dev BLEU {mean(new):.2f} > {mean(old):.2f}, but one dev set loses {-worst:.2f} (> {MAX_LOSS})"
    return True, f"mean dev BLEU {mean(new):.2f} > {mean(old):.2f}, no dev set worse by more than {MAX_LOSS}"


def cli(*args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "crossattn", *map(str, args)], cwd=REPO, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"crossattn {' '.join(map(str, args))} failed:\n{proc.stderr[-2000:]}")
    return proc.stdout


def alignment_scores(model_dir: Path, direction: str, work: Path, *, reverse_dir: Path | None = None,
                     guided_layer: int | None = None) -> dict[str, str]:
    """AER on both gold sets (English first): with ``reverse_dir``, the default aligner (the
    heads of both directions); with ``guided_layer``, the guided head of the model's own
    cross-attention (row t = the step that predicts word t: --shift no). A fr-en model reads
    the French side as its source, and its links are turned around before scoring."""
    ways = {}
    if reverse_dir is not None:
        ways["heads"] = ["--reverse-model", str(reverse_dir)]
    if guided_layer is not None:
        ways["guided head"] = ["--method", "attention", "--layer", str(guided_layer), "--head", "0", "--shift", "no"]
    out = {}
    for name, folder in GOLD.items():
        en, fr = DATA / folder / "en.txt", DATA / folder / "fr.txt"
        pairs = f"{en}:{fr}" if direction == "en-fr" else f"{fr}:{en}"
        for way, extra in ways.items():
            pred = work / f"{direction}-{name}-{way.replace(' ', '_')}.align"
            cli("align", "--model", model_dir, "-i", pairs, "-o", pred, *extra)
            if direction == "fr-en":
                lines = pred.read_text(encoding="utf-8").splitlines()
                pred.write_text("".join(" ".join("-".join(x.split("-")[::-1]) for x in line.split()) + "\n"
                                        for line in lines), encoding="utf-8")
            out[f"{name} ({way})"] = cli("align-eval", "--gold", DATA / folder / "gold.talp", "--pred", pred).strip()
    return out


def cmd_after(a) -> int:
    files, data = Path(a.files), Path(a.data)
    work = Path(a.work)
    shutil.rmtree(work, ignore_errors=True)
    with step("unpack the returned models"):
        models = unpack_returned(files, work / "returned")
    sets = {n: DATA / n for n in DEV_SETS if (DATA / n).exists()}
    if (data / "ui_dev.tsv").exists():
        sets["ui_dev (pack)"] = data / "ui_dev.tsv"
    report: dict = {"limit": a.limit, "directions": {}}
    shipped_root = REPO / "crossattn" / "pretrained"
    for d, candidate in models.items():
        with step(f"{d}: candidate ship_model.py (fp16, beam 2, alpha 0.6)"):
            shipped_form = work / "ship" / d
            subprocess.run([sys.executable, str(REPO / "scripts" / "ship_model.py"), candidate, shipped_form,
                            "--beam", "2", "--alpha", "0.6", "--head-from", "none",
                            "--note", "scripts/train_general_gpu.sh (one H200 call, both directions)"],
                           check=True, capture_output=True)
        with step(f"{d}: score the new model and the shipped one on {len(sets)} dev sets"):
            new, old = score(shipped_form, sets, a.limit), score(shipped_root / d, sets, a.limit)
        ok, why = wins(new, old)
        for name in sets:
            print(f"  {d} {name}: new {new[name]['bleu']:.2f} BLEU ({new[name]['loops']} loops) / "
                  f"shipped {old[name]['bleu']:.2f} ({old[name]['loops']} loops)")
        print(f"{d}: {'SHIP' if ok else 'keep the shipped model'}: {why}")
        report["directions"][d] = {"new": new, "shipped": old, "ship": ok, "why": why}
    winners = [d for d, r in report["directions"].items() if r["ship"]]
    for d in models:  # the guided head needs no training of ours: measured for every returned model
        layer = json.loads((work / "ship" / d / "config.json").read_text()).get("training", {}).get("guided_layer")
        if layer is not None:
            with step(f"{d}: the guided head (layer {layer}, head 0) on the gold sets"):
                report["directions"][d]["alignment"] = alignment_scores(work / "ship" / d, d, work, guided_layer=layer)
    with_heads = winners if a.train_heads == "winners" else list(models)
    if with_heads:
        links = work / "head-links.tsv"
        with step(f"alignment links for the heads (the pack's first {a.head_pairs:,} guided pairs)"):
            from crossattn.guided import aligner_words, read_linked_pairs

            rows = read_linked_pairs(data / "guided.tsv.xz")[: a.head_pairs]
            links.write_text("".join(f"{aligner_words(s)}\t{aligner_words(t)}\t{' '.join(f'{i}-{j}' for i, j in x)}\n"
                                     for s, t, x in rows), encoding="utf-8")
        for d in with_heads:
            with step(f"{d}: train an alignment head ({a.head_steps} steps)"):
                cli("align-head", "--model", work / "ship" / d, "--links", links, "--columns", "en-fr",
                    "--steps", a.head_steps, "--pairs", a.head_pairs)
    if with_heads:  # the default aligner: en-fr's heads with fr-en's, whichever of them are new
        forward = work / "ship" / "en-fr" if "en-fr" in with_heads else shipped_root / "en-fr"
        backward = work / "ship" / "fr-en" if "fr-en" in with_heads else shipped_root / "fr-en"
        with step(f"the alignment heads of {forward} and {backward} on the gold sets"):
            report["heads"] = {"en-fr": str(forward), "fr-en": str(backward),
                               **alignment_scores(forward, "en-fr", work, reverse_dir=backward)}
        for k, v in report["heads"].items():
            print(f"  heads {k}: {v}")
    for d in models:
        for k, v in report["directions"][d].get("alignment", {}).items():
            print(f"  {d} {k}: {v}")
    if winners and a.ship:
        for d in winners:
            dest = shipped_root / d
            card = dest / "MODEL_CARD.md"
            if card.exists():
                shutil.copyfile(card, work / "ship" / d / "MODEL_CARD.md")
            tmp = dest.with_name(dest.name + ".new")
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(work / "ship" / d, tmp)
            old = dest.with_name(dest.name + ".old")
            dest.replace(old)
            tmp.replace(dest)
            shutil.rmtree(old)
            print(f"{d}: shipped into {dest} (update its MODEL_CARD.md with the numbers above)")
    elif winners:
        print(f"not shipped (no --ship): the winners are in {work / 'ship'}")
    else:
        print("nothing shipped: the shipped models stay")
    Path(a.report).write_text(json.dumps(report, indent=1) + "\n")
    print(f"report: {a.report}")
    return 0


def cmd_roundtrip(a) -> int:
    """What the int8 return costs: MODEL as it is against MODEL through to_int8/from_int8 and
    ship_model.py's fp16, both scored as `after` scores (CTranslate2 int8, beam 2)."""
    import torch

    from crossattn.modeldir import load_model_dir, save_model_dir

    work = Path(a.work)
    shutil.rmtree(work, ignore_errors=True)
    model, tokenizer, config = load_model_dir(a.model)
    state = {k: v for k, v in model.state_dict().items() if not (model.config.tie_output and k == "output.weight")}
    back = from_int8(to_int8(state))
    if model.config.tie_output:
        back["output.weight"] = back["embed.tokens.weight"]
    model.load_state_dict(back)
    extra = {k: v for k, v in config.items() if k not in ("model", "decoding", "files")}
    save_model_dir(model, tokenizer, work / "int8-fp32", config.get("decoding"), dtype=torch.float32, extra=extra)
    subprocess.run([sys.executable, str(REPO / "scripts" / "ship_model.py"), work / "int8-fp32", work / "int8",
                    "--beam", str(config["decoding"]["beam"]), "--alpha", str(config["decoding"]["alpha"]),
                    "--head-from", "none"], check=True, capture_output=True)
    sets = {n: DATA / n for n in DEV_SETS if (DATA / n).exists()}
    new, old = score(work / "int8", sets, a.limit), score(Path(a.model), sets, a.limit)
    for name in sets:
        print(f"{name} ({new[name]['sentences']:,}): as shipped {old[name]['bleu']:.2f} BLEU / {old[name]['chrf']:.2f} chrF, "
              f"through int8 {new[name]['bleu']:.2f} / {new[name]['chrf']:.2f}")
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("check", help="what the call would send and bring back, against the device tool's limits")
    c.add_argument("--carry", type=Path, action="append", default=None, help="carried path (default .gpu/data)")
    c.add_argument("--returned", type=Path, help="a folder standing for $OUT (the CPU dry run's)")
    c.add_argument("--assume-stashed", action="store_true", help="count the tree as `stash` would leave it")
    c.set_defaults(func=cmd_check)
    sub.add_parser("stash").set_defaults(func=cmd_stash)
    sub.add_parser("unstash").set_defaults(func=cmd_unstash)
    r = sub.add_parser("pack-return", help="(on the device) the trained models as int8 parts in OUT")
    r.add_argument("work")
    r.add_argument("out")
    r.set_defaults(func=cmd_pack_return)
    f = sub.add_parser("after", help="evaluate the returned models against the shipped ones, ship what wins")
    f.add_argument("files", help="the folder holding the call's returned files")
    f.add_argument("--data", default=".gpu/data", help="the pack (its ui_dev.tsv and guided.tsv.xz)")
    f.add_argument("--work", default="runs/gpu-after", help="scratch folder (replaced)")
    f.add_argument("--limit", type=int, help="first N lines of each dev set (the dry run's)")
    f.add_argument("--head-pairs", type=int, default=100_000)
    f.add_argument("--head-steps", type=int, default=2000)
    f.add_argument("--train-heads", choices=("winners", "all"), default="winners",
                   help="which returned models get alignment heads (all: the dry run, to try the path)")
    f.add_argument("--ship", action="store_true", help="replace crossattn/pretrained/<direction> with each winner")
    f.add_argument("--report", default="runs/gpu-after.json")
    f.set_defaults(func=cmd_after)
    t = sub.add_parser("roundtrip", help="what the int8 return costs, on a model directory (e.g. a shipped one)")
    t.add_argument("model")
    t.add_argument("--limit", type=int, help="first N lines of each dev set")
    t.add_argument("--work", default="runs/gpu-roundtrip")
    t.set_defaults(func=cmd_roundtrip)
    a = p.parse_args()
    if a.command == "check" and a.carry is None:
        a.carry = [Path(".gpu/data")]
    return a.func(a)


if __name__ == "__main__":
    sys.exit(main())
