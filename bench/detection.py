"""Language detection, English or French, on public held-out sets: accuracy on all texts
and on texts of 1-3 words, load time, memory, and the wheel each detector costs.

Sets: tatoeba/test and multi30k/test_2016_flickr (the issue's), wmt/newstest2012 and
hansard/dev (news and parliament), both sides (column 1 is English, column 2 French),
each text judged alone. None of their sentences is in the data that crossattn's word
counts come from (scripts/make_detect_words.py: training splits only). A text's words are its whitespace-separated
tokens holding a letter or a digit ("Qu'avons-nous ?" is one word, "Salut !" one).

Detectors (each measured in a process of its own, so that its memory is its own):

* ``crossattn``: what crossattn ships (crossattn/detect.py), as the server and CLI use it:
  py3langid on en/fr plus word counts from training text;
* ``py3langid-enfr`` / ``py3langid-all``: py3langid, told to choose between en and fr
  only, or among its 97 languages (an answer other than en/fr counts as wrong);
* ``lingua-enfr``: lingua-language-detector built for English and French only
  (``lingua-enfr-low``: its low-accuracy mode);
* ``before``: the function-word detector crossattn had until issue 26, taken from git
  (``--before-rev``) into a temporary directory.

    python bench/detection.py [--detectors crossattn,py3langid-enfr,...] [--extra-path DIR]
                              [--json bench/results/detection.json]

``--extra-path`` puts a directory on sys.path (e.g. a ``pip install --target`` of a
detector that is not installed in the virtualenv), so candidates can be measured without
installing them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tarfile
import tempfile
import time
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
SETS = {"tatoeba/test": DATA / "tatoeba" / "test.tsv", "multi30k/test_2016_flickr": DATA / "multi30k" / "test_2016_flickr.tsv",
        # other registers, held out as well: news and parliament
        "wmt/newstest2012": DATA / "wmt" / "newstest2012.tsv", "hansard/dev": DATA / "hansard" / "dev.tsv"}
LANGS = ("en", "fr")  # column order in the files
SHORT_WORDS = 3  # "texts of 1-3 words"
DETECTORS = ("crossattn", "py3langid-enfr", "py3langid-all", "lingua-enfr", "lingua-enfr-low", "before")
BEFORE_REV = "f6fbb9e"  # the last revision with the function-word detector in libretranslate.py
EXAMPLES = ["Merci beaucoup", "Bonne nuit.", "Salut !", "Hello", "Thanks a lot", "Bonjour", "Oui", "No"]


def word_count(text: str) -> int:
    return sum(1 for token in text.split() if re.search(r"\w", token))


def read_texts() -> list[tuple[str, str, str]]:
    """``(set name, language, text)`` for every non-empty side of every pair."""
    texts = []
    for name, path in SETS.items():
        for line in path.read_text(encoding="utf-8").splitlines():
            cols = line.split("\t")
            for lang, text in zip(LANGS, cols[:2]):
                if text.strip():
                    texts.append((name, lang, text.strip()))
    return texts


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


# -- the detectors, each made on first use --------------------------------------------
def make_detector(name: str, before_dir: str | None):
    """A function text -> (language code, confidence 0-100)."""
    if name == "crossattn":
        from crossattn.detect import detect

        return lambda text: detect(text)
    if name.startswith("py3langid"):
        from py3langid.langid import MODEL_FILE, LanguageIdentifier

        ident = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
        if name == "py3langid-enfr":
            ident.set_languages(list(LANGS))

        def py3langid_detect(text: str) -> tuple[str, float]:
            lang, p = ident.classify(text)
            return lang, 100.0 * p
        return py3langid_detect
    if name.startswith("lingua"):
        from lingua import Language, LanguageDetectorBuilder

        builder = LanguageDetectorBuilder.from_languages(Language.ENGLISH, Language.FRENCH)
        if name.endswith("-low"):
            builder = builder.with_low_accuracy_mode()
        detector = builder.build()

        def lingua_detect(text: str) -> tuple[str, float]:
            best = detector.compute_language_confidence_values(text)[0]
            return best.language.iso_code_639_1.name.lower(), 100.0 * best.value
        return lingua_detect
    if name == "before":
        sys.path.insert(0, before_dir)  # the old revision's crossattn, first on the path
        from crossattn.libretranslate import detect_language

        return lambda text: detect_language(text, sorted(LANGS))
    raise SystemExit(f"unknown detector {name!r}; choose from {', '.join(DETECTORS)}")


def measure_one(name: str, before_dir: str | None) -> dict:
    """Run in a process of its own: accuracy per set, side and length; load time; memory."""
    texts = read_texts()
    rss0 = rss_mib()
    start = time.perf_counter()
    detect = make_detector(name, before_dir)
    detect("warm up")  # lingua loads its models on first use
    load_s = time.perf_counter() - start
    start = time.perf_counter()
    answers = [detect(text) for _, _, text in texts]
    detect_s = time.perf_counter() - start
    rss1 = rss_mib()
    rows: dict = {}
    wrong = []
    for (set_name, lang, text), (found, confidence) in zip(texts, answers):
        short = word_count(text) <= SHORT_WORDS
        for key in (f"{set_name} {lang}", f"{set_name} all", *( [f"{set_name} {lang} 1-3 words", f"{set_name} 1-3 words"] if short else [])):
            row = rows.setdefault(key, {"texts": 0, "right": 0})
            row["texts"] += 1
            row["right"] += found == lang
        if found != lang:
            wrong.append({"set": set_name, "language": lang, "text": text, "found": found,
                          "confidence": round(confidence, 1)})
    for row in rows.values():
        row["accuracy_pct"] = round(100.0 * row["right"] / row["texts"], 2)
    return {
        "detector": name,
        "results": dict(sorted(rows.items())),
        "load_s": round(load_s, 2),
        "us_per_text": round(1e6 * detect_s / len(texts), 1),
        "rss_added_mib": round(rss1 - rss0, 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "examples": {t: [detect(t)[0], round(detect(t)[1], 1)] for t in EXAMPLES},
        "wrong_count": len(wrong),
        "wrong": wrong[:60],
    }


def export_before(rev: str) -> str:
    """The crossattn package of ``rev`` in a temporary directory (git archive: nothing in
    the repository changes)."""
    tar = subprocess.run(["git", "-C", str(REPO), "archive", rev, "crossattn"], capture_output=True, check=True).stdout
    where = tempfile.mkdtemp(prefix="crossattn-before-")
    with tarfile.open(fileobj=BytesIO(tar)) as t:
        t.extractall(where, filter="data")
    return where


def machine() -> dict:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                          check=False)
    return {"date": datetime.now(UTC).isoformat(timespec="seconds"), "cpu": cpu, "cores": os.cpu_count(),
            "load_avg_start": os.getloadavg(), "python": sys.version.split()[0], "git_head": head.stdout.strip()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--detectors", default=",".join(DETECTORS))
    p.add_argument("--extra-path", action="append", default=[], metavar="DIR",
                   help="put DIR on sys.path (a detector installed with pip install --target DIR)")
    p.add_argument("--before-rev", default=BEFORE_REV)
    p.add_argument("--json", metavar="FILE", help="write the results here (atomically)")
    p.add_argument("--one", help=argparse.SUPPRESS)  # the child process: measure this detector
    p.add_argument("--before-dir", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        sys.path[:0] = [str(REPO), *args.extra_path]
        print(json.dumps(measure_one(args.one, args.before_dir)))
        return
    names = [n for n in args.detectors.split(",") if n]
    before_dir = export_before(args.before_rev) if "before" in names else None
    out = {"machine": machine(), "word_definition": "whitespace-separated tokens holding a letter or digit",
           "sets": {name: str(path.relative_to(DATA)) for name, path in SETS.items()},
           "before_rev": args.before_rev if before_dir else None, "detectors": {}}
    for name in names:
        cmd = [sys.executable, __file__, "--one", name, *(f"--extra-path={d}" for d in args.extra_path)]
        if before_dir:
            cmd += ["--before-dir", before_dir]
        run = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if run.returncode:
            print(f"{name}: failed\n{run.stderr.strip()}", file=sys.stderr)
            continue
        result = json.loads(run.stdout)
        out["detectors"][name] = result
        r = result["results"]
        accuracy = "  ".join(f"{set_name.split('/')[0]} {r[f'{set_name} all']['accuracy_pct']:6.2f}%"
                             + (f" (1-3 words {r[f'{set_name} 1-3 words']['accuracy_pct']:6.2f}%)"
                                if f"{set_name} 1-3 words" in r else "") for set_name in SETS)
        print(f"{name:16s} {accuracy}  load {result['load_s']} s  {result['us_per_text']} us/text  "
              f"+{result['rss_added_mib']} MiB", flush=True)
    if args.json:
        path = Path(args.json)
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)


if __name__ == "__main__":
    main()
