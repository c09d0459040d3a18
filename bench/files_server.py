"""LibreTranslate's file API in `crossattn serve`, measured on a live server (one run each):

1. **Text while a file translates.** A .txt of English dev sentences (WMT newstest2012,
   ../shared/data) is uploaded; meanwhile one client sends a one-sentence /translate again
   and again. Its latency, against the idle server's, for each MARKUP_CHUNK (how many of a
   file's texts go to the translation thread at a time: batcher.py) and for the whole file
   in one job (what a file job on the translation thread itself would cost).
2. **Memory while refusing archive bombs** (issue 29): the server's resident memory sampled
   every 10 ms during each refusal against the idle server's, and its peak (VmHWM); bombs
   whose zip headers declare their size, and bombs whose headers lie (fuzz_documents.bomb).

    python bench/files_server.py [--sentences 200] [--out bench/results/files_server.json]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from load_test import start_server, stop_server  # noqa: E402

from crossattn.atomic import write_text_atomic  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEV = REPO.parent / "shared" / "data" / "wmt" / "newstest2012.tsv"
SENTENCE = "Where is the nearest train station?"
# `crossattn serve` with batcher.MARKUP_CHUNK set first (argv[1]); the rest of argv as the CLI's
LAUNCH = ("import sys, crossattn.batcher as b; b.MARKUP_CHUNK = int(sys.argv.pop(1)); "
          "sys.argv[0] = 'crossattn'; from crossattn.cli import main; sys.exit(main())")


def start(chunk: int, args: list[str]) -> tuple[subprocess.Popen, str]:
    return start_server(args, timeout=300, launch=[sys.executable, "-c", LAUNCH, str(chunk)])


def memory_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(field)


def one_sentence(url: str) -> float:
    started = time.perf_counter()
    r = httpx.post(url + "/translate", json={"q": SENTENCE, "source": "en", "target": "fr"}, timeout=300)
    r.raise_for_status()
    return time.perf_counter() - started


def upload(url: str, name: str, data: bytes, timeout: float = 900) -> httpx.Response:
    return httpx.post(url + "/translate_file", data={"source": "en", "target": "fr"}, files={"file": (name, data)},
                      timeout=timeout)


def summary(seconds: list[float]) -> dict:
    return {"n": len(seconds), "median_ms": round(1000 * statistics.median(seconds)),
            "max_ms": round(1000 * max(seconds)), "all_ms": [round(1000 * s) for s in seconds]}


def text_while_a_file_translates(chunk: int, document: bytes, threads: int) -> dict:
    proc, url = start(chunk, ["--threads", str(threads), "--file-timeout", "900", "--max-file-mb", "5",
                              "--timeout", "900"])  # latencies measured, not cut at the 30 s default
    try:
        one_sentence(url)
        idle = [one_sentence(url) for _ in range(10)]
        result: dict = {}

        def translate_file() -> None:
            started = time.perf_counter()
            r = upload(url, "news.txt", document)
            result.update(status=r.status_code, file_s=round(time.perf_counter() - started, 1))

        worker = threading.Thread(target=translate_file)
        worker.start()
        time.sleep(0.5)
        during = []
        while worker.is_alive():
            during.append(one_sentence(url))
            time.sleep(0.2)
        worker.join()
        return {"chunk": chunk, "idle": summary(idle), "during_file": summary(during) if during else None, **result}
    finally:
        stop_server(proc)


# -- bombs -----------------------------------------------------------------------------
def zipped(members: list[tuple[str, bytes | int]]) -> bytes:
    """A zip of (name, bytes) members, or (name, N) for N MB of spaces written in chunks."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        for name, content in members:
            if isinstance(content, int):
                with z.open(name, "w", force_zip64=True) as member:
                    for _ in range(content):
                        member.write(b" " * (1 << 20))
            else:
                z.writestr(name, content)
    return buffer.getvalue()


def bombs() -> dict[str, bytes]:
    from fuzz_documents import bomb  # (bench/) each archive type with 1 GiB of XML, its zip headers lying

    lying = {f"lying-headers-1GB{ext}": bomb(ext, 1 << 30, lie=True) for ext in (".docx", ".pptx", ".odt", ".epub")}
    return {**lying,
        "deflate-1GB.docx": zipped([("[Content_Types].xml", b"<Types/>"), ("word/document.xml", 1024)]),
        "deflate-1GB.odt": zipped([("mimetype", b"application/vnd.oasis.opendocument.text"), ("content.xml", 1024)]),
        "deflate-1GB.pptx": zipped([("[Content_Types].xml", b"<Types/>"), ("ppt/slides/slide1.xml", 1024)]),
        "deflate-1GB.epub": zipped([("mimetype", b"application/epub+zip"), ("OEBPS/chapter.xhtml", 1024)]),
        "members-20000.docx": zipped([("[Content_Types].xml", b"<Types/>")]
                                     + [(f"word/media/{i}.xml", b"<a/>") for i in range(20000)]),
        "billion-laughs.docx": zipped([("[Content_Types].xml", b"<Types/>"), ("word/document.xml", (
            b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
            + b"".join(b'<!ENTITY %s "%s">' % (chr(98 + i).encode(), (b"&%s;" % chr(97 + i).encode()) * 10)
                       for i in range(9))
            + b']><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
              b"<w:body><w:p><w:r><w:t>&j;</w:t></w:r></w:p></w:body></w:document>"))]),
    }


def memory_while_refusing_bombs(threads: int) -> dict:
    proc, url = start(8, ["--threads", str(threads), "--max-file-mb", "5"])
    try:
        one_sentence(url)
        # a real .docx first, so the format libraries are loaded before the baseline
        sys.path.insert(0, str(REPO / "tests"))
        from test_files_api import docx

        assert upload(url, "warm.docx", docx(["The cat sleeps."])).status_code == 200
        idle_rss, idle_hwm = memory_kb(proc.pid, "VmRSS"), memory_kb(proc.pid, "VmHWM")
        rows = []
        for name, data in bombs().items():
            peak, done = [0], threading.Event()

            def sample() -> None:
                while not done.is_set():
                    peak[0] = max(peak[0], memory_kb(proc.pid, "VmRSS"))
                    time.sleep(0.01)

            sampler = threading.Thread(target=sample)
            sampler.start()
            started = time.perf_counter()
            r = upload(url, name, data, timeout=120)
            seconds = time.perf_counter() - started
            done.set()
            sampler.join()
            rows.append({"file": name, "bytes": len(data), "status": r.status_code,
                         "error": r.json().get("error"), "seconds": round(seconds, 2),
                         "peak_rss_mb": round(peak[0] / 1024, 1),
                         "peak_rss_over_idle_mb": round((peak[0] - idle_rss) / 1024, 1)})
        still = one_sentence(url)
        return {"idle_rss_mb": round(idle_rss / 1024, 1), "idle_vmhwm_mb": round(idle_hwm / 1024, 1),
                "vmhwm_after_mb": round(memory_kb(proc.pid, "VmHWM") / 1024, 1), "bombs": rows,
                "translate_after_s": round(still, 2), "server_alive": proc.poll() is None}
    finally:
        stop_server(proc)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sentences", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1, help="the server's CTranslate2 threads")
    ap.add_argument("--chunks", default="4,8,1000000")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "files_server.json"))
    ap.add_argument("--only-bombs", action="store_true", help="measure the bombs again, keep the rest of --out")
    args = ap.parse_args()
    if args.only_bombs:
        report = json.loads(Path(args.out).read_text())
        report["bombs"] = memory_while_refusing_bombs(args.threads)
        report["bombs"]["date"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        report["bombs"]["load_average"] = round(os.getloadavg()[0], 1)
        write_text_atomic(args.out, json.dumps(report, indent=2) + "\n")
        print(json.dumps(report["bombs"], indent=2))
        return
    if not DEV.is_file():
        sys.exit(f"needs {DEV} (../shared/data)")
    english = [line.split("\t")[0] for line in DEV.read_text(encoding="utf-8").splitlines()[: args.sentences]]
    document = ("\n".join(english) + "\n").encode()
    report = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the start",
        "server": f"crossattn serve --threads {args.threads} (en-fr and fr-en loaded)",
        "document": f"{len(english)} lines of WMT newstest2012 English (dev), {len(document)} bytes",
        "text_while_file": [text_while_a_file_translates(int(c), document, args.threads)
                            for c in args.chunks.split(",")],
        "bombs": memory_while_refusing_bombs(args.threads),
    }
    report["load_average_at_the_end"] = round(os.getloadavg()[0], 1)
    write_text_atomic(args.out, json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
