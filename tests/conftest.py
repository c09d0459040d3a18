"""Shared fixtures: a synthetic word-substitution task and a tiny model trained on it.

The task (English-like words -> French-like words, one for one, 1-6 words) is easy
enough that the ``tiny`` preset learns it in a few hundred steps on one CPU thread,
so the whole pipeline (CLI training, checkpoints, decoding) can be tested for real.
"""

from __future__ import annotations

import importlib.util
import os
import random
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"  # ../shared/data: used when present, never required

EN = "the cat dog house red blue big small eats sees runs sleeps green tree bird fish water book man woman".split()
FR = "le chat chien maison rouge bleu grand petit mange voit court dort vert arbre oiseau poisson eau livre homme femme".split()
EN_TO_FR = dict(zip(EN, FR))

# Shared by the session model and the resume test, which must reproduce it exactly.
TINY_STEPS, TINY_EVAL_EVERY = 240, 40
TINY_OPTIONS = ["--preset", "tiny", "--max-steps", str(TINY_STEPS), "--eval-every", str(TINY_EVAL_EVERY),
                "--max-tokens", "512", "--seed", "1", "--device", "cpu", "--dtype", "fp32"]


def make_pairs(n: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        words = [rng.choice(EN) for _ in range(rng.randint(1, 6))]
        pairs.append((" ".join(words), " ".join(EN_TO_FR[w] for w in words)))
    return pairs


def write_tsv(path: Path, pairs: list[tuple[str, str]]) -> Path:
    path.write_text("".join(f"{s}\t{t}\n" for s, t in pairs), encoding="utf-8")
    return path


def load_bench_module(name: str):
    """bench/NAME.py as a module (registered in sys.modules: dataclasses look their module up there)."""
    spec = importlib.util.spec_from_file_location(name, REPO / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def cli_env() -> dict[str, str]:
    """One thread per process: the machines running the tests are shared and small."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "CROSSATTN_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def run_cli(args: list[str], input: str | bytes | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m crossattn ARGS`` in a fresh process; text mode unless input is bytes."""
    return subprocess.run([sys.executable, "-m", "crossattn", *map(str, args)], input=input, capture_output=True,
                          text=not isinstance(input, bytes), env=cli_env(), cwd=REPO, timeout=timeout)


@pytest.fixture(scope="session", autouse=True)
def private_model_cache(tmp_path_factory):
    """CTranslate2 conversions go to a cache of this session's own, not ~/.cache."""
    os.environ["CROSSATTN_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield


@dataclass
class SynthData:
    root: Path
    train: Path  # 3000 generated pairs (about 2300 distinct)
    dev: Path  # 40 pairs
    test: Path  # 100 pairs, none of them in train

    def train_args(self, out: Path) -> list[str]:
        return ["train", "--train", str(self.train), "--valid", str(self.dev), "--out", str(out), *TINY_OPTIONS]


@pytest.fixture(scope="session")
def synth_data(tmp_path_factory) -> SynthData:
    root = tmp_path_factory.mktemp("synth")
    train = make_pairs(3000, seed=1)
    seen = set(train)
    test = [p for p in make_pairs(400, seed=3) if p not in seen][:100]
    return SynthData(root, write_tsv(root / "train.tsv", train), write_tsv(root / "dev.tsv", make_pairs(40, seed=2)),
                     write_tsv(root / "test.tsv", test))


@dataclass
class TinyRun:
    out: Path  # the training output directory (model/ inside)
    proc: subprocess.CompletedProcess
    seconds: float


@pytest.fixture(scope="session")
def tiny_run(synth_data, tmp_path_factory) -> TinyRun:
    """``crossattn train --preset tiny`` run once per session through the real CLI."""
    out = tmp_path_factory.mktemp("tiny") / "run"
    start = time.time()
    proc = run_cli(synth_data.train_args(out))
    if proc.returncode != 0:
        pytest.fail(f"tiny training failed (rc {proc.returncode}):\n{proc.stderr[-3000:]}")
    return TinyRun(out, proc, time.time() - start)


@pytest.fixture(scope="session")
def tiny_translator(tiny_run):
    from crossattn.torch_engine import TorchTranslator as Translator

    return Translator.load(tiny_run.out, device="cpu", dtype="fp32")


@pytest.fixture(scope="session")
def shipped_translator():
    """The shipped en-fr model as `crossattn translate` and `serve` run it (CTranslate2),
    on one CPU thread in fp32: loaded once for every test that reads it."""
    from crossattn.translator import Translator

    return Translator.load(device="cpu", dtype="fp32", threads=1)


@pytest.fixture(scope="session")
def shipped_fr_en_translator():
    """The shipped fr-en model, as ``shipped_translator`` is the en-fr one."""
    from crossattn.translator import Translator

    return Translator.load("fr-en", device="cpu", dtype="fp32", threads=1)


@pytest.fixture(scope="session")
def shipped_torch_translator():
    """The shipped en-fr model's torch network (attention, alignment, explain) on the CPU
    in fp32, loaded once for every test that reads it."""
    from crossattn.torch_engine import TorchTranslator

    return TorchTranslator.load(device="cpu", dtype="fp32")


@pytest.fixture
def one_thread():
    """In-process model work on one thread: on a busy 2-core machine, OpenMP with two
    threads is about 10x slower. The caller's setting is restored afterwards."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
