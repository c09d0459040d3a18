"""Translation latency of ``crossattn serve`` while /api/attention requests pour in.

A real server on loopback, fresh (no attention request served yet). First the quiet run:
C translation clients, each sending R single-sentence requests one after another. Then
the same twice while S more clients send /api/attention requests back to back (the
storm): once from its start, while the attention views load (torch, the networks), and
once after the first attention answer, when every attention request is real work.
Every translation must come back 200 with what ``Translator.translate`` gives; attention
requests may be refused (503 busy) or time out (504), they only make the load.

The figure of merit is the translation p99 during the storm over the quiet p99, cold
and warm (issue 28's target: at most 2).

    python bench/attention_storm.py                        # 4 clients x 60, 8 storm clients
    python bench/attention_storm.py --repo /tmp/old-checkout --out /tmp/storm-old.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import threading
import time
from pathlib import Path

import httpx

from load_test import REPO, SENTENCES, reference_translations, start_server, stop_server

from crossattn.atomic import write_text_atomic

ATTENTION_TEXTS = ["The cat sleeps on the red sofa.", "I went to the market this morning. It was raining.",
                   "Where is the station? I am late.", "My brother is a doctor in Paris."]


def percentiles(seconds: list[float]) -> dict:
    ms = sorted(s * 1000 for s in seconds)
    if not ms:
        return {}
    q = statistics.quantiles(ms, n=100, method="inclusive") if len(ms) > 1 else [ms[0]] * 99
    return {"n": len(ms), "p50": round(q[49], 1), "p90": round(q[89], 1), "p99": round(q[98], 1),
            "max": round(ms[-1], 1)}


def translation_clients(url: str, reference: dict[str, str], clients: int, requests: int) -> dict:
    """``clients`` threads, each sending ``requests`` single-sentence translations in turn."""
    latencies: list[float] = []
    starts: list[float] = []  # seconds from the run's start, for the slowest requests
    failures: list[str] = []
    lock = threading.Lock()
    gate = threading.Barrier(clients)

    def client(k: int) -> None:
        with httpx.Client(base_url=url, timeout=120) as http:
            gate.wait()
            for i in range(requests):
                text = SENTENCES[(k * 7 + i) % len(SENTENCES)]
                t0 = time.perf_counter()
                try:
                    r = http.post("/api/translate", json={"text": text})
                    problem = None if r.status_code == 200 and r.json().get("translation") == reference[text] \
                        else f"{r.status_code}: {r.text[:200]}"
                except httpx.HTTPError as e:
                    problem = f"{type(e).__name__}: {e}"
                with lock:
                    latencies.append(time.perf_counter() - t0)
                    starts.append(t0 - began)
                    if problem:
                        failures.append(f"{text!r}: {problem}")

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - began
    slowest = sorted(zip(latencies, starts), reverse=True)[:3]
    return {"wall_s": round(wall, 2), "throughput_rps": round(len(latencies) / wall, 1),
            "latency_ms": percentiles(latencies), "failures": failures,
            "slowest": [{"ms": round(lat * 1000, 1), "sent_at_s": round(at, 2)} for lat, at in slowest]}


def storm(url: str, clients: int, stop: threading.Event, outcomes: list) -> list[threading.Thread]:
    """``clients`` threads sending /api/attention back to back until ``stop``."""

    def client(k: int) -> None:
        with httpx.Client(base_url=url, timeout=120) as http:
            i = 0
            while not stop.is_set():
                t0 = time.perf_counter()
                try:
                    status = http.post("/api/attention", json={"text": ATTENTION_TEXTS[(k + i) % len(ATTENTION_TEXTS)]}
                                       ).status_code
                except httpx.HTTPError as e:
                    status = type(e).__name__
                outcomes.append((status, time.perf_counter() - t0))
                i += 1

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(clients)]
    for t in threads:
        t.start()
    return threads


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=4, help="translation clients")
    p.add_argument("--requests", type=int, default=60, help="translations per client, per run")
    p.add_argument("--storm", type=int, default=8, help="attention clients during the storm")
    p.add_argument("--server-args", default="", help="extra `crossattn serve` options, e.g. '--threads 1'")
    p.add_argument("--repo", type=Path, default=REPO, help="the checkout whose server to run (default: this one)")
    p.add_argument("--out", default=str(REPO / "bench" / "results" / "attention_storm.json"))
    args = p.parse_args()

    reference = reference_translations()
    proc, url = start_server(args.server_args.split(), cwd=args.repo)
    try:
        translation_clients(url, reference, args.clients, 5)  # warm-up: connections, first batches
        quiet = translation_clients(url, reference, args.clients, args.requests)
        stop, outcomes = threading.Event(), []
        stormers = storm(url, args.storm, stop, outcomes)
        time.sleep(0.5)  # the storm is under way (and torch being loaded) before we measure
        cold = translation_clients(url, reference, args.clients, args.requests)
        deadline = time.monotonic() + 180
        while not any(status == 200 for status, _ in outcomes) and time.monotonic() < deadline:
            time.sleep(0.5)  # the attention views are loaded and answering: the storm at full strength
        warm_from = len(outcomes)
        warm = translation_clients(url, reference, args.clients, args.requests)
        stop.set()
        for t in stormers:
            t.join(150)
        health = httpx.get(url + "/health", timeout=30).json()
        alive = proc.poll() is None
    finally:
        stop_server(proc)

    statuses: dict[str, int] = {}
    for status, _ in outcomes:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    report = {
        "repo": str(args.repo), "server_args": args.server_args.split(),
        "clients": args.clients, "requests_per_client": args.requests, "storm_clients": args.storm,
        "quiet": quiet, "storm_cold": cold, "storm_warm": warm,
        "attention": {"statuses": statuses, "latency_ms": percentiles([s for st, s in outcomes if st == 200]),
                      "answered_during_warm_storm": sum(st == 200 for st, _ in outcomes[warm_from:])},
        "p99_ratio": {name: round(report_of["latency_ms"]["p99"] / quiet["latency_ms"]["p99"], 2)
                      for name, report_of in (("storm_cold", cold), ("storm_warm", warm))},
        "p50_ratio": {name: round(report_of["latency_ms"]["p50"] / quiet["latency_ms"]["p50"], 2)
                      for name, report_of in (("storm_cold", cold), ("storm_warm", warm))},
        "server": {"status": health.get("status"), **health.get("stats", {}), "attention": health.get("attention")},
        "machine": {"cpus": os.cpu_count(), "load_avg_end": os.getloadavg(), "python": platform.python_version(),
                    "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
    }
    for name in ("quiet", "storm_cold", "storm_warm"):
        lat = report[name]["latency_ms"]
        print(f"{name:<10} translation p50 {lat['p50']:>8} ms  p99 {lat['p99']:>8} ms  max {lat['max']:>8} ms  "
              f"{report[name]['throughput_rps']} req/s, {len(report[name]['failures'])} failures")
    print(f"attention during the storm: {statuses}, 200s {report['attention']['latency_ms']}")
    print(f"storm p99 / quiet p99 = {report['p99_ratio']} (target <= 2); p50 ratio {report['p50_ratio']}")
    failures = quiet["failures"] + cold["failures"] + warm["failures"]
    for f in failures[:10]:
        print("  failure: " + f)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out, json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0 if alive and not failures else 1


if __name__ == "__main__":
    sys.exit(main())
