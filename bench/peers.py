"""The self-hosted translation ecosystem, side by side on the same model and sentences, in
one run: file translation, a server under load, and a cold start.

File translation (tatoeba/dev.tsv sources, whole processes timed, start-up included, one
thread each; the systems take turns, ``--repeats`` rounds, medians reported):

* ``crossattn translate -i`` (CTranslate2 engine, the model's default beam and compute type);
* CTranslate2 called directly: a minimal script on the same converted model, same beam,
  length penalty, length budget and compute type (what the CLI adds is the difference);
* crossattn's torch engine (what ``crossattn translate -i`` ran before CTranslate2);
* argostranslate with our ``export --format argos`` package (its own sentence splitting);
* Hugging Face MarianMT ``generate`` of the same size and length of output (random weights:
  our pre-LN weights do not fit Marian's post-LN layout), batch 64.

CLI vs CTranslate2 (``ct2``, issue 28's target): ``crossattn translate -i`` with the CLI's
defaults (no thread settings in its environment: its measured thread rule decides) against
CTranslate2 called directly at each thread count, 2,410 tatoeba/test sources, beam 4, int8
and fp32; wall and child CPU seconds, taking turns, medians.

Server (24 clients x 40 requests of tatoeba/dev sentences, LibreTranslate's
``POST /translate``): ``crossattn serve`` vs LibreTranslate (PyPI, in its own virtual
environment given by ``--libretranslate-venv``) serving our Argos package.

    python bench/peers.py [--sentences 2217] [--repeats 3] [--libretranslate-venv /tmp/ltvenv]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
DATA = REPO.parent / "shared" / "data"
ONE_THREAD = {"OMP_NUM_THREADS": "1", "CROSSATTN_THREADS": "1", "ARGOS_INTRA_THREADS": "1",
              "ARGOS_INTER_THREADS": "1", "MKL_NUM_THREADS": "1"}

CT2_DIRECT = r"""
import sys, ctranslate2, sentencepiece as spm
model_dir, src, out, beam, alpha, compute = sys.argv[1:7]
threads = int(sys.argv[7]) if len(sys.argv) > 7 else 1
sp = spm.SentencePieceProcessor(model_file=model_dir + "/tokenizer.model")
tr = ctranslate2.Translator(model_dir, device="cpu", compute_type=compute, intra_threads=threads)
lines = open(src, encoding="utf-8").read().split("\n")[:-1]
pieces = sp.encode(lines, out_type=str)
# crossattn's per-sentence length budget: 1.5 x source tokens (+ EOS) + 10, at most 255
order = sorted(range(len(pieces)), key=lambda i: len(pieces[i]))
hyps = [None] * len(pieces)
i = 0
while i < len(order):
    n = len(pieces[order[i]])
    j = i
    while j < len(order) and len(pieces[order[j]]) == n:
        j += 1
    idx = order[i:j]
    res = tr.translate_batch([pieces[k] for k in idx], beam_size=int(beam), length_penalty=float(alpha),
                             max_decoding_length=min(int(1.5 * (n + 1) + 10), 255), max_input_length=0,
                             max_batch_size=64)
    for k, r in zip(idx, res):
        hyps[k] = sp.decode(r.hypotheses[0])
    i = j
open(out, "w", encoding="utf-8").write("".join(h + "\n" for h in hyps))
"""

TORCH_ENGINE = r"""
import sys, torch
torch.set_num_threads(1)
from crossattn.torch_engine import TorchTranslator
src, out = sys.argv[1:3]
lines = open(src, encoding="utf-8").read().split("\n")[:-1]
hyps = TorchTranslator.load(device="cpu", dtype="fp32").translate(lines)
open(out, "w", encoding="utf-8").write("".join(h + "\n" for h in hyps))
"""

ARGOS = r"""
import sys
import argostranslate.package as p, argostranslate.translate as t
package, src, out = sys.argv[1:4]
p.install_from_path(package)
lines = open(src, encoding="utf-8").read().split("\n")[:-1]
en, fr = [next(l for l in t.get_installed_languages() if l.code == c) for c in ("en", "fr")]
tr = en.get_translation(fr)
open(out, "w", encoding="utf-8").write("".join(tr.translate(x) + "\n" for x in lines))
"""

HF = r"""
import sys, torch
torch.set_num_threads(1)
sys.path.insert(0, sys.argv[4])
from translation import HFMarian
from crossattn.tokenizer import Tokenizer
from crossattn.modeldir import PRETRAINED_DIR
src, out, lengths = sys.argv[1:4]
lines = open(src, encoding="utf-8").read().split("\n")[:-1]
lens = [int(x) for x in open(lengths).read().split()]
hyps = HFMarian(Tokenizer(PRETRAINED_DIR / "tokenizer.model")).translate(lines, 2, 64, lens)
open(out, "w", encoding="utf-8").write("".join(h + "\n" for h in hyps))
"""


def argos_env(home: Path) -> dict:
    # Argos caches spaCy's multilingual model at import in SPACY mode; an existing cache entry
    # keeps it offline (the package's own splitter is what is used)
    (home / "cache" / "argos-translate" / "spacy" / "senter" / "model").mkdir(parents=True, exist_ok=True)
    return {"HOME": str(home), "XDG_DATA_HOME": str(home / "data"), "XDG_CACHE_HOME": str(home / "cache"),
            "XDG_CONFIG_HOME": str(home / "config"), "ARGOS_CHUNK_TYPE": "SPACY", "ARGOS_BEAM_SIZE": "2"}


def timed_run(cmd: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=REPO, env={**os.environ, **ONE_THREAD, **env}, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def file_translation(sentences: int, repeats: int, work: Path) -> dict:
    from crossattn.export import export_argos
    from crossattn.decoding import model_decoding
    from crossattn.modeldir import read_model_dir
    from crossattn.precision import COMPUTE_TYPES, default_compute_type
    from crossattn.translator import Translator

    rows = [line.split("\t") for line in (DATA / "tatoeba" / "dev.tsv").read_text(encoding="utf-8").splitlines()]
    src = work / "src.txt"
    src.write_text("".join(r[0] + "\n" for r in rows[:sentences]), encoding="utf-8")
    translator = Translator.load(threads=1)  # converts (and caches) the model once, before any timing
    _, config, _, _ = read_model_dir(None)
    decoding = model_decoding(config.get("decoding"))
    compute = COMPUTE_TYPES[default_compute_type("cpu")]
    ours_out = work / "ours.txt"
    timed_run([sys.executable, "-m", "crossattn", "translate", "-i", str(src), "-o", str(ours_out)], {})
    lengths = work / "lengths.txt"
    lengths.write_text(" ".join(str(len(translator.tokenizer.encode(h)) + 1)
                                for h in ours_out.read_text(encoding="utf-8").split("\n")[:-1]))
    package = export_argos(None, work / "en_fr.argosmodel", force=True)
    home = work / "argos-home"
    systems = {
        "crossattn translate -i": ([sys.executable, "-m", "crossattn", "translate", "-i", str(src), "-o",
                                    str(work / "a.txt")], {}),
        "CTranslate2 direct": ([sys.executable, "-c", CT2_DIRECT, str(translator.ct2_dir), str(src), str(work / "b.txt"),
                                str(decoding["beam"]), str(decoding["alpha"]), compute], {}),
        "crossattn torch engine (before)": ([sys.executable, "-c", TORCH_ENGINE, str(src), str(work / "c.txt")], {}),
        "argostranslate (our export)": ([sys.executable, "-c", ARGOS, str(package), str(src), str(work / "d.txt")],
                                        argos_env(home)),
        "HF MarianMT generate": ([sys.executable, "-c", HF, str(src), str(work / "e.txt"), str(lengths),
                                  str(REPO / "bench")], {}),
    }
    times: dict[str, list[float]] = {name: [] for name in systems}
    for _ in range(repeats):  # take turns: a busy moment hits one round of everyone, not one system
        for name, (cmd, env) in systems.items():
            times[name].append(timed_run(cmd, env))
    same = (work / "a.txt").read_text() == (work / "b.txt").read_text()
    base = statistics.median(times["crossattn translate -i"])
    return {"sentences": sentences, "beam": decoding["beam"], "alpha": decoding["alpha"], "compute_type": compute,
            "cli_output_equals_ct2_direct": same,
            "rows": [{"system": name, "median_s": statistics.median(t), "runs_s": t,
                      "sent_per_s": sentences / statistics.median(t), "crossattn_speedup": statistics.median(t) / base}
                     for name, t in times.items()]}


def timed_run_cpu(cmd: list[str], env: dict) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the child) of one run; ``env`` replaces os.environ's
    thread settings rather than adding ONE_THREAD (the CLI runs with its defaults)."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def cli_vs_ctranslate2(repeats: int, work: Path, beam: int = 4, computes: tuple[str, ...] = ("int8", "fp32"),
                       limit: int | None = None, after_round=None, thread_counts: list[int] | None = None) -> dict:
    """Issue 28's speed target: ``crossattn translate -i`` with the CLI's defaults (its thread
    count is its own measured rule) vs CTranslate2 called directly at each thread count
    (its best one is the reference), 2,410 tatoeba/test sources, beam 4, int8 and fp32. Whole
    processes, start-up included; the systems take turns, ``repeats`` rounds, medians."""
    from crossattn.modeldir import read_model_dir
    from crossattn.precision import COMPUTE_TYPES
    from crossattn.translator import Translator, thread_candidates, usable_cpus

    rows = [line.split("\t") for line in (DATA / "tatoeba" / "test.tsv").read_text(encoding="utf-8").splitlines()]
    rows = rows[:limit]
    src = work / "test-src.txt"
    src.write_text("".join(r[0] + "\n" for r in rows), encoding="utf-8")
    _, config, _, _ = read_model_dir(None)
    alpha = config.get("decoding", {}).get("alpha", 0.6)
    # the CLI's own environment: no thread settings of ours or OpenMP's
    clean = {k: v for k, v in os.environ.items() if k not in ONE_THREAD}
    counts = thread_candidates(usable_cpus()) if thread_counts is None else thread_counts
    systems, chosen = {}, {}
    for dtype in computes:
        translator = Translator.load(dtype=dtype)  # converts the model and measures its threads, untimed
        chosen[dtype] = translator.threads
        systems[f"crossattn translate -i ({dtype})"] = [sys.executable, "-m", "crossattn", "translate", "-i", str(src),
                                                        "-o", str(work / f"cli-{dtype}.txt"), "--beam", str(beam),
                                                        "--dtype", dtype]
        for n in counts:
            systems[f"CTranslate2 direct ({dtype}, {n} thread{'s' if n > 1 else ''})"] = [
                sys.executable, "-c", CT2_DIRECT, str(translator.ct2_dir), str(src), str(work / f"ct2-{dtype}-{n}.txt"),
                str(beam), str(alpha), COMPUTE_TYPES[dtype], str(n)]
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in systems}
    for r in range(repeats):  # take turns: a busy moment hits one round of everyone, not one system
        for name, cmd in systems.items():
            runs[name].append(timed_run_cpu(cmd, clean))
            print(f"round {r + 1}: {name}: {runs[name][-1][0]:.1f} s wall, {runs[name][-1][1]:.1f} s CPU", flush=True)
        if after_round:  # a long run on a shared machine: each finished round is kept
            after_round(cli_vs_ctranslate2_summary(runs, computes, work, {
                "sentences": len(rows), "beam": beam, "alpha": alpha, "thread_counts": counts,
                "cli_threads_chosen": chosen, "rounds": r + 1}))
    return cli_vs_ctranslate2_summary(runs, computes, work, {
        "sentences": len(rows), "beam": beam, "alpha": alpha, "thread_counts": counts, "cli_threads_chosen": chosen,
        "rounds": repeats})


def cli_vs_ctranslate2_summary(runs: dict, computes: tuple[str, ...], work: Path, out: dict) -> dict:
    out = {**out, "rows": [], "ratios": {}}
    for name, t in runs.items():
        out["rows"].append({"system": name, "median_wall_s": statistics.median(w for w, _ in t),
                            "median_cpu_s": statistics.median(c for _, c in t), "runs_wall_s": [w for w, _ in t],
                            "runs_cpu_s": [c for _, c in t]})
    by_name = {row["system"]: row for row in out["rows"]}
    for dtype in computes:
        cli = by_name[f"crossattn translate -i ({dtype})"]
        direct = [row for name, row in by_name.items() if name.startswith(f"CTranslate2 direct ({dtype},")]
        best = min(direct, key=lambda row: row["median_wall_s"])
        out["ratios"][dtype] = {
            "ct2_best": best["system"],
            # speed ratio = CTranslate2's time / the CLI's time: >= 0.95 is issue 28's target
            "cli_speed_vs_ct2_best_wall": best["median_wall_s"] / cli["median_wall_s"],
            "cli_cpu_vs_ct2_best_cpu": best["median_cpu_s"] / cli["median_cpu_s"]}
    return out


# -- servers ---------------------------------------------------------------------------
def load(url: str, texts: list[str], clients: int, requests: int) -> dict:
    import httpx
    from load_test import run_clients

    results, lock, gate = [], threading.Lock(), threading.Barrier(clients)

    def client(k: int) -> None:
        mine = [texts[(k * requests + i) % len(texts)] for i in range(requests)]
        with httpx.Client(base_url=url, timeout=300) as http:
            gate.wait()
            for text in mine:
                t0 = time.perf_counter()
                try:
                    r = http.post("/translate", json={"q": text, "source": "en", "target": "fr", "format": "text"})
                    answer = r.json().get("translatedText") if r.status_code == 200 else None
                except httpx.HTTPError:
                    answer = None
                with lock:
                    results.append((text, answer, time.perf_counter() - t0))

    wall = run_clients(client, clients)
    lat = sorted(s for _, _, s in results)
    return {"requests": len(results), "wall_s": wall, "throughput_rps": len(results) / wall,
            "p50_ms": 1e3 * lat[len(lat) // 2], "p99_ms": 1e3 * lat[min(len(lat) - 1, int(0.99 * len(lat)))],
            "answers": {t: a for t, a, _ in results}, "lost": sum(a is None for _, a, _ in results)}


def wait_up(url: str, proc: subprocess.Popen, path: str, timeout: float = 300) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(url + path, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not come up")


def servers(clients: int, requests: int, work: Path, lt_venv: Path | None) -> dict:
    from load_test import free_port

    from crossattn.translator import Translator

    rows = [line.split("\t") for line in (DATA / "tatoeba" / "dev.tsv").read_text(encoding="utf-8").splitlines()]
    texts = [r[0] for r in rows[: clients * requests]]
    reference = dict(zip(texts, Translator.load(threads=1).translate(texts)))
    out = {}
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "crossattn", "serve", "--port", str(port), "--threads", "2"],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_up(f"http://127.0.0.1:{port}", proc, "/health")
        r = load(f"http://127.0.0.1:{port}", texts, clients, requests)
        r["wrong"] = sum(reference[t] != a for t, a in r.pop("answers").items() if a is not None)
        out["crossattn serve"] = r
    finally:
        proc.terminate()
        proc.wait()
    lt = None if lt_venv is None else lt_venv / "bin" / "libretranslate"
    if lt is None or not lt.exists():
        out["LibreTranslate"] = {"skipped": "no LibreTranslate virtual environment (--libretranslate-venv)"}
        return out
    from crossattn.export import export_argos
    from crossattn.modeldir import shipped_directions

    directions = shipped_directions()
    if len(directions) < 2:  # LibreTranslate downloads models at start when it has fewer than two
        out["LibreTranslate"] = {"skipped": "LibreTranslate needs two installed packages to start offline"}
        return out
    home = work / "lt-home"
    env = {**os.environ, **argos_env(home), "OMP_NUM_THREADS": "2"}
    for direction in directions:
        package = export_argos(direction, work / f"lt_{direction.replace('-', '_')}.argosmodel", force=True)
        subprocess.run([str(lt_venv / "bin" / "python"), "-c",
                        f"import argostranslate.package as p; p.install_from_path({str(package)!r})"], check=True,
                       env=env)
    port = free_port()
    proc = subprocess.Popen([str(lt), "--host", "127.0.0.1", "--port", str(port), "--load-only", "en,fr",
                             "--disable-web-ui", "--threads", "2"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_up(f"http://127.0.0.1:{port}", proc, "/languages")
        r = load(f"http://127.0.0.1:{port}", texts, clients, requests)
        r.pop("answers")
        out["LibreTranslate"] = r
    finally:
        proc.terminate()
        proc.wait()
    return out


def cold_start(repeats: int) -> dict:
    cmd = [str(Path(sys.executable).parent / "crossattn"), "translate", "Hello, how are you?"]
    subprocess.run(cmd, check=True, capture_output=True)  # the conversion cache is made here, not timed
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return {"median_s": statistics.median(times), "runs_s": times}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=2217)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--clients", type=int, default=24)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--libretranslate-venv", type=Path)
    parser.add_argument("--ct2-limit", type=int, help="ct2 section: only the first N tatoeba/test sources (a dry run)")
    parser.add_argument("--ct2-computes", nargs="+", default=["int8", "fp32"], choices=["int8", "fp32"])
    parser.add_argument("--ct2-threads", nargs="+", type=int,
                        help="ct2 section: CTranslate2's thread counts (default: 1, 2, 4, ... up to the CPUs)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["files", "servers", "cold", "ct2"])
    parser.add_argument("--only", nargs="*", choices=["files", "servers", "cold", "ct2"],
                        help="run only these sections (default: all but --skip)")
    parser.add_argument("--json", default=str(REPO / "bench" / "results" / "peers.json"))
    args = parser.parse_args()
    if args.only:
        args.skip = [x for x in ("files", "servers", "cold", "ct2") if x not in args.only]
    from crossattn.atomic import write_text_atomic

    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    result = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": {
        "cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count(), "load_avg_start": os.getloadavg()}}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if "cold" not in args.skip:
            result["cold_start"] = cold_start(10)
            print("cold start:", result["cold_start"], flush=True)
        if "files" not in args.skip:
            result["files"] = file_translation(args.sentences, args.repeats, work)
            print(json.dumps(result["files"], indent=1), flush=True)
        if "ct2" not in args.skip:
            def keep(partial: dict) -> None:
                write_text_atomic(Path(args.json), json.dumps({**result, "cli_vs_ctranslate2": partial}, indent=2) + "\n")

            result["cli_vs_ctranslate2"] = cli_vs_ctranslate2(args.repeats, work, computes=tuple(args.ct2_computes),
                                                              limit=args.ct2_limit, after_round=keep,
                                                              thread_counts=args.ct2_threads)
            print(json.dumps(result["cli_vs_ctranslate2"], indent=1), flush=True)
        if "servers" not in args.skip:
            result["servers"] = servers(args.clients, args.requests, work, args.libretranslate_venv)
            print(json.dumps(result["servers"], indent=1), flush=True)
    result["machine"]["load_avg_end"] = os.getloadavg()
    write_text_atomic(Path(args.json), json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
