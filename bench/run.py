"""All benchmarks, one command: tables on stdout, everything in one JSON file.

    python bench/run.py [--quick] [--out bench/results.json] [--only attention,training,...]

Sections: matmul ceiling, attention op, training throughput, translation throughput and
latency, hotspots (profiles). Every ratio compares numbers taken in the same run.
CPU benchmarks use --threads (default 1: the machine is shared, and one busy core per
process is what each system gets; CTranslate2 is given the same number of threads).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # random-init HF models only: never download
# The NumPy engine's OpenBLAS reads its thread count when numpy loads (with torch, below):
# one thread, like every other system at the default --threads 1.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from common import machine_info, matmul_ceiling, print_table  # noqa: E402

SECTIONS = ["ceiling", "attention", "training", "translation", "hotspots"]
SECTION_TIMES: dict[str, float] = {}


def timed_section(name: str, fn):
    start = time.time()
    try:
        return fn()
    finally:
        SECTION_TIMES[name] = time.time() - start


def goals(results: dict) -> list[dict]:
    """The targets of the project against what this run measured (ratio >= goal = met)."""
    rows = []
    tr = results.get("training", {}).get("rows", [])
    ours = next((r for r in tr if r["model"] == "ours"), None)
    for other in ("nn.Transformer", "HF Marian"):
        r = next((x for x in tr if x["model"] == other), None)
        if ours and r:
            rows.append({"goal": f"training tok/s vs {other}", "target": 2.0, "measured": ours["tgt tok/s"] / r["tgt tok/s"],
                         "measured (cpu time)": ours["cpu tok/s"] / r["cpu tok/s"]})
    th = results.get("translation", {}).get("throughput", [])
    for beam in (1, 4):
        for batch in (64, 1):
            pick = {r["system"]: r for r in th if r["beam"] == beam and r["batch"] == batch}
            if "ours" not in pick:
                continue
            for other, target in (("HF Marian", 5.0), ("CT2 float32", 1.0)):
                if other in pick:
                    rows.append({"goal": f"translation beam {beam} batch {batch} vs {other}", "target": target,
                                 "measured": pick["ours"]["sent/s"] / pick[other]["sent/s"],
                                 "measured (cpu time)": pick["ours"]["cpu sent/s"] / pick[other]["cpu sent/s"]})
    for r in results.get("attention", {}).get("rows", []):
        if r["dtype"] == "float32":
            rows.append({"goal": f"attention {r['shape']} {r['mode']} vs nn.MHA(need_weights=False)", "target": 1.0,
                         "measured": r["nn.MHA/ours"]})
    for r in rows:
        r["met"] = "yes" if r["measured"] >= r["target"] else "NO"
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes, a few minutes in all")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results.json"), help="JSON results")
    ap.add_argument("--only", help=f"comma-separated subset of {','.join(SECTIONS)}")
    ap.add_argument("--threads", type=int, default=1, help="torch (and CTranslate2) threads")
    ap.add_argument("--sentences", type=int, default=1000, help="translation throughput sentences")
    ap.add_argument("--single-sentences", type=int, default=200,
                    help="sentences for the batch-size-1 runs (the slowest part; a rate, so a sample suffices)")
    args = ap.parse_args()
    sections = args.only.split(",") if args.only else SECTIONS
    if unknown := set(sections) - set(SECTIONS):
        ap.error(f"unknown sections {sorted(unknown)}")
    if args.quick and not args.only:
        sections = [s for s in sections if s != "hotspots"]
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    machine = machine_info(args.threads)
    print(json.dumps(machine))
    out = Path(args.out)
    if args.only and out.exists():  # a partial rerun updates its sections of an earlier full run
        results = json.loads(out.read_text())
        results.setdefault("reruns", []).append({"sections": sections, "machine": machine})
    else:
        results = {"machine": machine, "quick": args.quick}
    started = time.time()
    ceiling = {"fp32": None}
    if "ceiling" in sections or "training" in sections:
        fp32 = matmul_ceiling(torch.float32, args.quick)
        bf16 = matmul_ceiling(torch.bfloat16, args.quick)
        ceiling = {"fp32": fp32, "bf16": bf16}
        results["matmul_ceiling"] = ceiling
        print_table("Matmul ceiling (square n x n, GFLOP/s)", [
            {"dtype": c["dtype"], **c["gflops_by_size"], "best": c["gflops"]} for c in (fp32, bf16)],
            ["dtype", *fp32["gflops_by_size"], "best"])
    if "attention" in sections:
        import attention

        results["attention"] = timed_section("attention", lambda: attention.run(args.quick))
    if "training" in sections:
        import training

        results["training"] = timed_section("training", lambda: training.run(args.quick, ceiling))
    if "translation" in sections:
        import translation

        results["translation"] = timed_section(
            "translation", lambda: translation.run(args.quick, args.sentences, args.single_sentences))
    if "hotspots" in sections:
        import hotspots

        results["hotspots"] = timed_section("hotspots", lambda: hotspots.run(args.quick))

    results.setdefault("section_seconds", {}).update({k: round(v) for k, v in SECTION_TIMES.items()})
    results["goals"] = goals(results)
    if results["goals"]:
        print_table("Goals (measured = our speed / theirs)", results["goals"], ["goal", "target", "measured", "measured (cpu time)", "met"])
    machine["load_avg_end"] = os.getloadavg()
    seconds = time.time() - started
    results.setdefault("seconds", seconds)
    out.write_text(json.dumps(results, indent=1, default=str) + "\n")
    print(f"\n{seconds:.0f} s; load average at start {machine['load_avg_start']}, "
          f"at end {machine['load_avg_end']}; results in {out}")


if __name__ == "__main__":
    main()
