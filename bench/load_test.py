"""Load test for ``crossattn serve``: a real server on loopback, C concurrent clients
each sending R requests, good and hostile mixed.

Every good request must come back 200 with exactly what ``Translator.translate`` gives
for the same text; every bad one must come back as a clean 4xx JSON error; the server
must still be healthy at the end. Prints throughput and latency percentiles.

    python bench/load_test.py                      # 32 clients x 50 requests
    python bench/load_test.py --clients 8 --requests 10 --out /tmp/load.json

tests/test_server.py imports this file and runs a small version of the same test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from crossattn.atomic import write_text_atomic

REPO = Path(__file__).resolve().parents[1]

# Short sentences keep each batch cheap; edge cases are "good" inputs too.
SENTENCES = [
    "Hello.", "Thank you very much.", "Where is the station?", "I like cats.", "He is tall.",
    "The weather is nice today.", "I am hungry.", "She reads a book.", "We are going home.",
    "Close the door, please.", "It is raining.", "My brother is a doctor.", "I don't know.",
    "The cat sleeps on the sofa.", "Do you speak French?", "This is my house.",
]
EDGE = ["", "I ❤️ Paris 😀", "مرحبا بالعالم", "שלום", "tab\there\x07bell\x00nul", "\u202eevil\u202c text"]


@dataclass
class Case:
    name: str
    method: str
    path: str
    content: bytes | None = None
    expect_status: tuple[int, ...] = (200,)
    expect: list[str] | str | None = None  # translations for good requests
    headers: dict = field(default_factory=lambda: {"content-type": "application/json"})


def body(obj) -> bytes:
    return json.dumps(obj).encode()


def make_case(rng: random.Random) -> Case:
    """One request: ~65% good (single, batch, attention, edge), ~35% hostile."""
    r = rng.random()
    s = rng.choice(SENTENCES)
    if r < 0.40:
        return Case("single", "POST", "/api/translate", body({"text": s}), expect=s)
    if r < 0.55:
        texts = rng.sample(SENTENCES, rng.randint(2, 4))
        return Case("batch", "POST", "/api/translate", body({"texts": texts}), expect=texts)
    if r < 0.60:
        return Case("attention", "POST", "/api/attention", body({"text": s}), expect=s)
    if r < 0.65:
        e = rng.choice(EDGE)
        return Case("edge", "POST", "/api/translate", body({"text": e}), expect=e)
    bad = [
        ("malformed_json", b'{"text": "Hello', (400,)),
        ("wrong_type", body({"text": 42}), (422,)),
        ("missing_field", body({"txt": "Hello"}), (422,)),
        ("too_long_text", body({"text": "a" * 1001}), (413,)),
        ("huge_text", body({"text": "b" * 100_000}), (413,)),
        ("too_many_texts", body({"texts": ["Hi."] * 65}), (413,)),
        ("huge_body", body({"text": "c" * 300_000}), (413,)),
        ("invalid_utf8", b'{"text": "\xff\xfe\xfa"}', (400,)),
        ("lone_surrogate", b'{"text": "\\ud800"}', (422,)),
        ("beam_too_large", body({"text": "Hi.", "beam": 999}), (422,)),
        ("not_an_object", b"[1, 2, 3]", (422,)),
    ]
    name, content, status = rng.choice(bad)
    return Case(name, "POST", "/api/translate", content, status)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(args: list[str] = (), timeout: float = 180.0, cwd: Path = REPO,
                 launch: list[str] | None = None) -> tuple[subprocess.Popen, str]:
    """`crossattn serve` in a subprocess on a free loopback port; waits for /health.
    ``cwd``: the checkout whose code runs (``python -m`` imports from there first);
    ``launch``: the command before "serve" (default ``python -m crossattn``)."""
    port = free_port()
    log = tempfile.TemporaryFile("w+")  # a file, not a pipe: a full pipe would stall the server
    launch = launch or [sys.executable, "-m", "crossattn"]
    proc = subprocess.Popen([*launch, "serve", "--port", str(port), *args],
                            cwd=cwd, stdout=log, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"server exited with {proc.returncode}: {log.read()[-2000:]}")
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    proc.kill()
    raise RuntimeError("server did not come up in time")


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def check(case: Case, response: httpx.Response, reference: dict[str, str]) -> str | None:
    """None if the answer is right, else what is wrong."""
    if response.status_code not in case.expect_status:
        return f"status {response.status_code}, want {case.expect_status}: {response.text[:200]}"
    try:
        data = response.json()
    except ValueError:
        return f"not JSON: {response.text[:200]}"
    if response.status_code >= 400:
        return None if isinstance(data.get("error"), str) and data.get("detail") else f"bad error body {data}"
    if case.name == "batch":
        want = [reference[t] for t in case.expect]
        return None if data.get("translations") == want else f"got {data.get('translations')}, want {want}"
    if case.name == "edge":
        # gibberish in gives a translation that runs to the length cap, and the cap
        # depends on the longest sentence in the batch: only "" -> "" is exact
        ok = isinstance(data.get("translation"), str) and (case.expect or not data["translation"])
        return None if ok else f"bad answer {data} for {case.expect!r}"
    if data.get("translation") != reference[case.expect]:
        return f"got {data.get('translation')!r}, want {reference[case.expect]!r}"
    if case.name == "attention" and len(data["attention"][0][0]) != len(data["target_tokens"]):
        return "attention rows != target tokens"
    return None


def run_clients(client, clients: int) -> float:
    """``client(k)`` on ``clients`` threads at once; the wall seconds until all are done."""
    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0


def run_load(url: str, reference: dict[str, str], clients: int = 32, requests: int = 50, seed: int = 0,
             timeout: float = 120.0) -> dict:
    """`clients` threads, each with its own keep-alive connection, `requests` each."""
    results: list[tuple[str, bool, float, str | None]] = []  # (case, good, seconds, problem)
    lock = threading.Lock()
    start_gate = threading.Barrier(clients)

    def client(k: int) -> None:
        rng = random.Random(seed * 1000 + k)
        cases = [make_case(rng) for _ in range(requests)]
        with httpx.Client(base_url=url, timeout=timeout) as http:
            start_gate.wait()
            for case in cases:
                t0 = time.perf_counter()
                try:
                    response = http.request(case.method, case.path, content=case.content, headers=case.headers)
                    problem = check(case, response, reference)
                except httpx.HTTPError as e:
                    problem = f"{type(e).__name__}: {e}"
                with lock:
                    results.append((case.name, case.expect_status == (200,), time.perf_counter() - t0, problem))

    wall = run_clients(client, clients)
    health = httpx.get(url + "/health", timeout=30).json()

    def pct(xs: list[float], q: float) -> float:
        return statistics.quantiles(xs, n=100, method="inclusive")[q - 1] * 1000 if len(xs) > 1 else xs[0] * 1000

    good = [s for _, g, s, _ in results if g]
    bad = [s for _, g, s, _ in results if not g]
    return {
        "clients": clients, "requests_per_client": requests, "requests": len(results), "wall_s": round(wall, 2),
        "throughput_rps": round(len(results) / wall, 1),
        "good": len(good), "bad": len(bad),
        "latency_ms": {kind: {"p50": round(pct(xs, 50), 1), "p99": round(pct(xs, 99), 1), "max": round(max(xs) * 1000, 1)}
                       for kind, xs in (("all", good + bad), ("good", good), ("bad", bad)) if xs},
        "failures": [f"{name}: {problem}" for name, _, _, problem in results if problem],
        "server": {"status": health["status"], **health["stats"]},
    }


def reference_translations(model: str | None = None) -> dict[str, str]:
    """What the library itself says, to hold the server's answers against."""
    from crossattn.translator import Translator

    return dict(zip(SENTENCES, Translator.load(model).translate(SENTENCES)))


def print_report(report: dict) -> None:
    lat = report["latency_ms"]
    print(f"{report['clients']} clients x {report['requests_per_client']} requests = {report['requests']} "
          f"({report['good']} good, {report['bad']} bad) in {report['wall_s']} s: {report['throughput_rps']} req/s")
    print(f"{'requests':<10}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}")
    for kind, v in lat.items():
        print(f"{kind:<10}{v['p50']:>10}{v['p99']:>10}{v['max']:>10}")
    s = report["server"]
    print(f"server: {s['status']}, {s['batches']} model calls for {s['texts']} texts (largest batch {s['largest_batch']})")
    print(f"failures: {len(report['failures'])}")
    for f in report["failures"][:10]:
        print("  " + f)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--requests", type=int, default=50, help="per client")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", help="model directory (default: the shipped one)")
    p.add_argument("--server-args", default="", help="extra `crossattn serve` options, e.g. '--threads 1 --max-batch 16'")
    p.add_argument("--out", default=str(REPO / "bench" / "results" / "load_test.json"))
    args = p.parse_args()
    reference = reference_translations(args.model)
    server_args = args.server_args.split() + (["--model", args.model] if args.model else [])
    proc, url = start_server(server_args)
    try:
        report = run_load(url, reference, args.clients, args.requests, args.seed)
        alive = proc.poll() is None
    finally:
        stop_server(proc)
    report["server_args"] = server_args
    report["machine"] = {"cpus": os.cpu_count(), "load_avg": os.getloadavg(), "python": platform.python_version(),
                         "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}
    print_report(report)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out, json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0 if alive and not report["failures"] and report["server"]["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
