"""The prepared GPU run (scripts/train_general_gpu.sh, scripts/gpu_run.py) on the CPU: what it
would send and bring back fits the device tool's limits, the guided loss is a number, and the
int8 return rebuilds the models."""

from __future__ import annotations

import json
import lzma
import math
import os
import subprocess
import sys
from pathlib import Path

import torch

from conftest import REPO, cli_env, make_pairs

sys.path.insert(0, str(REPO / "scripts"))
import gpu_run  # noqa: E402


def test_int8_rows_round_trip_within_half_a_step():
    torch.manual_seed(0)
    state = {"w": torch.randn(64, 32), "b": torch.randn(32)}
    packed = gpu_run.to_int8(state)
    assert packed["w"].dtype == torch.int8 and packed["w.scale"].shape == (64,) and torch.equal(packed["b"], state["b"])
    back = gpu_run.from_int8(packed)
    step = state["w"].abs().amax(1, keepdim=True) / 127
    assert ((back["w"] - state["w"]).abs() <= step / 2 + 1e-7).all()
    # re-quantizing the rebuilt rows (what CTranslate2's int8 does) gives the same integers
    assert torch.equal(gpu_run.to_int8(back)["w"], packed["w"])


def test_check_counts_the_shipped_weights_and_the_carried_data(tmp_path):
    carried = tmp_path / "pack"
    carried.mkdir()
    (carried / "data.tsv.xz").write_bytes(os.urandom(3 * 2**20))
    files = gpu_run.travelling_files([carried])
    assert sum(s for _, s in files["carried"]) == 3 * 2**20
    weights = [s for p, s in files["tracked"] if p.name == "model.safetensors" and "pretrained" in p.parts]
    proc = subprocess.run([sys.executable, "scripts/gpu_run.py", "check", "--carry", str(carried)], cwd=REPO,
                          capture_output=True, text=True, env=cli_env())
    sent = sum(s for kind in files.values() for _, s in kind)
    assert (proc.returncode == 0) == (sent <= gpu_run.SEND_LIMIT and gpu_run.estimated_return() <= 48 * 2**20), proc.stdout
    if weights:  # the checkout holds the shipped weights: 83 MB, over the limit, and the check says what to do
        assert proc.returncode == 1 and "gpu_run.py stash" in proc.stdout
    assert sent - sum(weights) <= gpu_run.SEND_LIMIT  # without them it fits
    # the real run's models come back in int8 with room for the logs
    assert gpu_run.estimated_return() <= gpu_run.BACK_LIMIT - gpu_run.BACK_FILE_LIMIT


def synthetic_pack(root: Path) -> Path:
    """The pack's layout (pack_gpu_data.py), with the synthetic task's pairs."""
    root.mkdir()
    pairs = make_pairs(600, seed=5)
    with lzma.open(root / "synth.tsv.xz", "wt", encoding="utf-8") as f:
        f.writelines(f"{s}\t{t}\n" for s, t in pairs[:400])
    with lzma.open(root / "guided.tsv.xz", "wt", encoding="utf-8") as f:
        f.writelines(f"{s}\t{t}\t{' '.join(f'{i}-{i}' for i in range(len(s.split())))}\n" for s, t in pairs[400:])
    (root / "devmix.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in make_pairs(12, seed=6)), encoding="utf-8")
    (root / "ui_dev.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in make_pairs(12, seed=8)), encoding="utf-8")
    return root


def test_dry_run_fits_the_return_limits_and_rebuilds(tmp_path):
    """The real config (general-gpu.toml, guided alignment on) for 2 CPU steps on a tiny pack."""
    data, work, out = synthetic_pack(tmp_path / "pack"), tmp_path / "work", tmp_path / "out"
    env = {**cli_env(), "DATA": str(data), "WORK": str(work), "OUT": str(out), "PY": sys.executable,
           "MINUTES": "5", "MAX_STEPS": "2", "MAX_TOKENS": "600", "DEVICE": "cpu"}
    proc = subprocess.run(["bash", "scripts/train_general_gpu.sh"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    total, problems = gpu_run.returned_problems(out)
    assert not problems and total > 0
    names = sorted(p.name for p in out.iterdir())
    assert "logs.tgz" in names and any(n.startswith("models.tar.part-") for n in names)
    for d in ("en-fr", "fr-en"):
        rows = [json.loads(x) for x in (work / d / "metrics.jsonl").read_text().splitlines()]
        guided = [r["guided_loss"] for r in rows if "guided_loss" in r]
        assert guided and all(math.isfinite(x) and x > 0 for x in guided), rows
        assert json.loads((work / d / "model" / "config.json").read_text())["training"]["guided_layer"] == 0
    models = gpu_run.unpack_returned(out, tmp_path / "back")
    assert sorted(models) == ["en-fr", "fr-en"]
    from crossattn.modeldir import load_model_dir

    for d, path in models.items():
        model, _, config = load_model_dir(path)  # checksums verified
        trained, _, _ = load_model_dir(work / d / "model")
        for (name, a), b in zip(model.state_dict().items(), trained.state_dict().values()):
            assert (a - b).abs().max() <= b.abs().max() / 127, name
        assert config["languages"] == ({"source": "en", "target": "fr"} if d == "en-fr" else
                                       {"source": "fr", "target": "en"})


def test_ship_rule():
    old = {"a": {"bleu": 20.0}, "b": {"bleu": 30.0}}
    assert gpu_run.wins({"a": {"bleu": 22.0}, "b": {"bleu": 29.5}}, old)[0]
    assert not gpu_run.wins({"a": {"bleu": 24.0}, "b": {"bleu": 28.0}}, old)[0]  # one set loses 2 > 1
    assert not gpu_run.wins({"a": {"bleu": 20.0}, "b": {"bleu": 30.0}}, old)[0]  # a tie does not ship


def test_training_needs_nothing_the_device_lacks(synth_data, tmp_path):
    """The device machine has torch, sentencepiece, safetensors, sacrebleu, tqdm, matplotlib,
    but no ctranslate2, py3langid, fastapi or uvicorn (KINDS.md): the run and pack-return must
    not import them."""
    code = ("import sys\n"
            "for m in ('ctranslate2', 'py3langid', 'fastapi', 'uvicorn', 'eflomal'):\n"
            "    sys.modules[m] = None\n"
            "from crossattn.cli import entry\n"
            "sys.argv = ['crossattn'] + sys.argv[1:]\n"
            "entry()\n")
    out = tmp_path / "run"
    args = ["train", "--train", synth_data.train, "--valid", synth_data.dev, "--out", out, "--preset", "tiny",
            "--max-steps", "2", "--eval-every", "2", "--device", "cpu", "--dtype", "fp32"]
    proc = subprocess.run([sys.executable, "-c", code, *map(str, args)],
                          cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    work = tmp_path / "work"
    (work / "en-fr").mkdir(parents=True)
    (work / "en-fr" / "model").symlink_to(out / "model")
    code = ("import sys, runpy\n"
            "for m in ('ctranslate2', 'py3langid', 'fastapi', 'uvicorn', 'eflomal'):\n"
            "    sys.modules[m] = None\n"
            "sys.argv = sys.argv[1:]\n"
            "runpy.run_path('scripts/gpu_run.py', run_name='__main__')\n")
    proc = subprocess.run([sys.executable, "-c", code, "scripts/gpu_run.py", "pack-return", str(work), str(tmp_path / "out")],
                          cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "out" / "models.tar.part-00").exists()
