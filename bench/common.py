"""Shared helpers for the benchmarks: timing, machine info, tables, data, matmul ceiling."""

from __future__ import annotations

import hashlib
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
DEV_TSV = DATA / "tatoeba" / "dev.tsv"


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def machine_info(threads: int) -> dict:
    model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    flags = cpu_flags()
    info = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpu": model,
        "cores": os.cpu_count(),
        "threads_used": threads,
        "simd": sorted(f for f in flags if f in {"avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "load_avg_start": os.getloadavg(),
        # which version of the code was measured (the decoder is being optimised in parallel)
        "code_sha256": {f.name: hashlib.sha256(f.read_bytes()).hexdigest()[:12]
                        for f in sorted((REPO / "crossattn").glob("*.py"))
                        if f.name in ("attention.py", "model.py", "decode.py", "translator.py")},
    }
    try:
        git = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
        info["git_head"] = git.stdout.strip() or None
    except OSError:
        info["git_head"] = None
    for name in ("transformers", "ctranslate2"):
        try:
            info[name] = __import__(name).__version__
        except ImportError:
            info[name] = None
    return info


def timed(fn: Callable[[], object], repeats: int, warmup: int = 1,
          clock: Callable[[], float] = time.perf_counter) -> list[float]:
    """Seconds of ``repeats`` calls after ``warmup`` untimed ones.

    ``clock=time.process_time`` measures this process's CPU time: with one compute thread
    that is the wall time on an idle machine, which a shared machine cannot give us.
    """
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = clock()
        fn()
        times.append(clock() - start)
    return times


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def percentile(xs: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    s = sorted(xs)
    k = max(0, min(len(s) - 1, int(round(q / 100 * len(s) + 0.5)) - 1))
    return s[k]


def matmul_ceiling(dtype: torch.dtype, quick: bool) -> dict:
    """Best GFLOP/s of a square matmul: the roof every other number is measured against.

    Both ``a @ b`` (aten::mm) and ``F.linear`` (addmm; oneDNN for bf16), since they take
    different kernels on CPU and layers use the latter.
    """
    import torch.nn.functional as F

    best = {}
    if dtype == torch.float32:
        sizes = [512, 1024] if quick else [512, 1024, 2048]
    else:  # slow without hardware bf16: keep it short
        sizes = [512] if quick else [512, 1024]
    for n in sizes:
        a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
        flops = 2 * n**3
        for kind, fn in (("mm", lambda: a @ b), ("linear", lambda: F.linear(a, b))):
            one = timed(fn, 1, warmup=1)[0]
            repeats = max(1, min(10, int(1.0 / max(one, 1e-4))))  # about a second per size
            best[f"{kind} n={n}"] = flops / median(timed(fn, repeats, warmup=0)) / 1e9
    return {"dtype": str(dtype).replace("torch.", ""), "gflops_by_size": best, "gflops": max(best.values())}


def dev_sentences(n: int) -> list[tuple[str, str]]:
    """First ``n`` (English, French) pairs of the Tatoeba dev set."""
    if not DEV_TSV.exists():
        raise SystemExit(f"benchmark data not found: {DEV_TSV}")
    pairs = []
    with open(DEV_TSV, encoding="utf-8") as f:
        for line in f:
            src, tgt = line.rstrip("\n").split("\t")[:2]
            pairs.append((src, tgt))
            if len(pairs) == n:
                break
    return pairs


def fmt(x, digits: int = 3) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        if x == 0:
            return "0"
        if abs(x) >= 100:
            return f"{x:,.0f}"
        return f"{x:.{digits}g}"
    return str(x)


def print_table(title: str, rows: list[dict], columns: list[str]) -> None:
    """A plain-text table of ``rows`` (dicts) restricted to ``columns``."""
    cells = [[fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) if cells else len(c) for i, c in enumerate(columns)]
    print(f"\n## {title}")
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)), flush=True)
