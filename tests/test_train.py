"""Training that survives being killed, and data-parallel training that stays in sync.

Resume is meant to be exact: a run killed with SIGKILL at any moment and continued
with ``--resume`` must end with bit-identical weights and optimizer state to a run
that was never interrupted (same seed, same steps, one CPU thread).
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from crossattn.atomic import read_records

from conftest import REPO, TINY_EVAL_EVERY, TINY_STEPS, cli_env, run_cli

CHECKPOINT_FILES = ["model.safetensors", "optimizer.safetensors", "state.json"]


def complete_checkpoints(out: Path) -> dict[int, Path]:
    root = out / "checkpoints"
    dirs = [p for p in root.iterdir() if re.fullmatch(r"step-\d+", p.name)] if root.exists() else []
    return {int(p.name[5:]): p for p in dirs}


def assert_nothing_half_written(out: Path) -> None:
    """Every checkpoint (and model/) under its final name is whole and loads;
    work in progress may only live under a temporary name (.tmp, .old)."""
    from crossattn.modeldir import load_model_dir

    for step, path in complete_checkpoints(out).items():
        assert sorted(p.name for p in path.iterdir()) == CHECKPOINT_FILES, path
        assert json.loads((path / "state.json").read_text())["step"] == step
        load_file(str(path / "model.safetensors"))
        load_file(str(path / "optimizer.safetensors"))
    if (out / "model").exists():
        load_model_dir(out / "model")  # verifies checksums too


def assert_same_final_state(ref: Path, got: Path) -> None:
    last = f"checkpoints/step-{TINY_STEPS:07d}"
    for name in ("model.safetensors", "optimizer.safetensors"):
        a, b = load_file(str(ref / last / name)), load_file(str(got / last / name))
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), f"{name}: {k} differs after resume"
    assert json.loads((ref / last / "state.json").read_text()) == json.loads((got / last / "state.json").read_text())
    assert (ref / "model" / "model.safetensors").read_bytes() == (got / "model" / "model.safetensors").read_bytes()
    assert (ref / "tokenizer.model").read_bytes() == (got / "tokenizer.model").read_bytes()


def crash_at(args: list[str], point: str, log: Path) -> subprocess.CompletedProcess:
    """Run training until it kills itself with SIGKILL at ``point`` (train.crash_point)."""
    with open(log, "w") as f:
        proc = subprocess.run([sys.executable, "-m", "crossattn", *args], stdout=subprocess.DEVNULL, stderr=f,
                              env={**cli_env(), "CROSSATTN_CRASH_AT": point}, cwd=REPO, timeout=600)
    assert proc.returncode == -signal.SIGKILL, f"no crash at {point} (rc {proc.returncode}): {log.read_text()[-2000:]}"
    return proc


def test_resume_after_repeated_sigkill_is_exact(tiny_run, synth_data, tmp_path):
    """SIGKILL at three dangerous moments, each hit deterministically, then resume: the
    final state equals the uninterrupted run's bit for bit."""
    out = tmp_path / "run"
    args = synth_data.train_args(out) + ["--resume"]
    ckpt_root = out / "checkpoints"
    # 1. between checkpoints; 2. inside a checkpoint write (weights written, optimizer not);
    # 3. after a new checkpoint is in place, while an old one is being deleted
    first, second, third = TINY_EVAL_EVERY + 7, 3 * TINY_EVAL_EVERY, 4 * TINY_EVAL_EVERY

    crash_at(args, f"step:{first}", tmp_path / "log1.txt")
    assert sorted(complete_checkpoints(out)) == [TINY_EVAL_EVERY]
    assert_nothing_half_written(out)

    crash_at(args, f"checkpoint-write:{second}", tmp_path / "log2.txt")
    assert (ckpt_root / f"step-{second:07d}.tmp").is_dir() and second not in complete_checkpoints(out)
    assert_nothing_half_written(out)

    crash_at(args, f"checkpoint-delete:{third}", tmp_path / "log3.txt")
    assert max(complete_checkpoints(out)) == third and list(ckpt_root.glob("*.del"))
    assert_nothing_half_written(out)

    # a record torn by the kill (one write() the kernel stopped between pages): left out, then trimmed
    with open(out / "metrics.jsonl", "a") as f:
        f.write('{"step": 99999, "train_lo')
    proc = run_cli(args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "resumed from" in proc.stderr
    assert_nothing_half_written(out)
    assert_same_final_state(tiny_run.out, out)
    # the log reads as the uninterrupted run's: the lost tails logged again, not twice
    ref, got = read_records(tiny_run.out / "metrics.jsonl"), read_records(out / "metrics.jsonl")
    assert (out / "metrics.jsonl").read_text().endswith("\n")
    steps = [r["step"] for r in got]
    assert steps == sorted(steps) and 99999 not in steps
    assert [r for r in got if "valid_loss" in r] == [r for r in ref if "valid_loss" in r]
    assert [r["step"] for r in got if "train_loss" in r] == [r["step"] for r in ref if "train_loss" in r]
    assert sorted(complete_checkpoints(out)) == [TINY_STEPS - TINY_EVAL_EVERY, TINY_STEPS]  # keep_last=2
    assert not list(ckpt_root.glob("*.tmp")) and not list(ckpt_root.glob("*.old"))


DDP_SCRIPT = textwrap.dedent('''
    """`crossattn train` under torchrun, then every rank dumps what it trained."""
    import sys

    import torch
    from safetensors.torch import save_file

    from crossattn import train
    from crossattn.cli import main

    _train = train.Trainer.train


    def train_and_dump(self):
        result = _train(self)
        state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        state["_world"] = torch.tensor(self.world)
        state["_first_batch"] = torch.tensor(self.batcher.epoch_batches(0)[0])
        save_file(state, str(self.out / f"rank{self.rank}.safetensors"))
        return result


    train.Trainer.train = train_and_dump
    sys.exit(main(sys.argv[1:]))
''')


def test_ddp_two_processes_stay_in_sync(synth_data, tmp_path):
    script = tmp_path / "ddp_train.py"
    script.write_text(DDP_SCRIPT)
    out = tmp_path / "ddp"
    torchrun = Path(sys.executable).parent / "torchrun"
    cmd = [str(torchrun), "--standalone", "--nproc_per_node", "2", str(script), "train",
           "--train", str(synth_data.train), "--valid", str(synth_data.dev), "--out", str(out), "--preset", "tiny",
           "--max-steps", "12", "--eval-every", "12", "--max-tokens", "512", "--device", "cpu", "--dtype", "fp32"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=cli_env(), cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 process(es)" in proc.stderr

    r0, r1 = load_file(str(out / "rank0.safetensors")), load_file(str(out / "rank1.safetensors"))
    assert int(r0.pop("_world")) == int(r1.pop("_world")) == 2
    # the ranks trained on different batches...
    assert not torch.equal(r0.pop("_first_batch"), r1.pop("_first_batch"))
    # ...yet hold the same weights
    for k in r0:
        assert torch.equal(r0[k], r1[k]), f"replicas diverged at {k}"
    ckpt = load_file(str(out / "checkpoints" / "step-0000012" / "model.safetensors"))
    for k in ckpt:
        assert torch.equal(ckpt[k], r0[k]), k
    # ...which moved away from the shared initialisation (seed 1, as in the trainer)
    from crossattn.model import ModelConfig, Seq2SeqTransformer

    torch.manual_seed(1)
    init = Seq2SeqTransformer(ModelConfig.from_dict(json.loads((out / "run.json").read_text())["model"])).state_dict()
    assert all(not torch.equal(init[k], ckpt[k]) for k in ckpt if k.endswith("weight") and "norm" not in k)


def test_resume_refuses_other_inputs(tiny_run, synth_data, tmp_path):
    """--resume continues the recorded run: other data is a one-line error, unless asked."""
    out = tmp_path / "run"
    args = synth_data.train_args(out)
    crash_at(args + ["--resume"], f"step:{TINY_EVAL_EVERY + 1}", tmp_path / "log.txt")
    other = [a if a != str(synth_data.dev) else str(synth_data.test) for a in args]
    proc = run_cli(other + ["--resume"])
    assert proc.returncode == 1 and proc.stdout == ""
    err = proc.stderr.strip().splitlines()[-1]
    assert err.startswith("crossattn: error: ") and "other data or settings" in err and "--allow-changed-inputs" in err
    recorded = json.loads((out / "run.json").read_text())
    assert recorded["data"]["valid"] == str(synth_data.dev)  # run.json is not overwritten
    proc = run_cli(other + ["--resume", "--allow-changed-inputs", "--max-steps", str(TINY_EVAL_EVERY + 2)])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "resumed from" in proc.stderr


@pytest.mark.parametrize("path", sorted(Path(__file__).resolve().parents[1].glob("configs/*.toml")), ids=lambda p: p.name)
def test_committed_configs_load(path):
    """Every recipe in configs/ names only keys the trainer knows."""
    from crossattn.train import load_config

    model_cfg, train_cfg = load_config(str(path), None)
    assert model_cfg.dropout >= 0 and train_cfg.max_tokens > 0


def test_averaging_checkpoints_with_other_weights_is_an_error_naming_them(tmp_path):
    """average_checkpoints loaded with strict=False: a tensor one checkpoint lacks, or has
    in excess, was skipped silently (the network kept its random initial values there)."""
    from safetensors.torch import save_file

    from crossattn.checkpoints import CheckpointError, average_checkpoints
    from crossattn.model import ModelConfig, Seq2SeqTransformer, save_model

    cfg = ModelConfig(vocab_size=300, d_model=16, n_heads=2, d_ff=32, encoder_layers=1, decoder_layers=1,
                      max_positions=32)
    dirs = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        dirs.append(tmp_path / f"step-{seed}")
        dirs[-1].mkdir()
        save_model(Seq2SeqTransformer(cfg), dirs[-1] / "model.safetensors")
    first, second = (load_file(str(d / "model.safetensors")) for d in dirs)
    mean = average_checkpoints(dirs, cfg).state_dict()
    assert all(torch.allclose(mean[k], (first[k] + second[k]) / 2) for k in first)

    name = "decoder_norm.weight"
    renamed = {("decoder_norm.wieght" if k == name else k): v for k, v in second.items()}
    save_file(renamed, str(dirs[1] / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"step-2: .*missing decoder_norm\.weight; unexpected decoder_norm\.wieght"):
        average_checkpoints(dirs, cfg)
    save_file({**second, "extra.bias": torch.zeros(3)}, str(dirs[1] / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"unexpected extra\.bias"):
        average_checkpoints(dirs, cfg)
    save_file({k: v for k, v in first.items() if k != name}, str(dirs[0] / "model.safetensors"))
    save_file({k: v for k, v in second.items() if k != name}, str(dirs[1] / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"step-1: .*missing decoder_norm\.weight"):  # both lack it
        average_checkpoints(dirs, cfg)
    save_file({**second, name: torch.ones(8)}, str(dirs[1] / "model.safetensors"))
    save_model(Seq2SeqTransformer(cfg), dirs[0] / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"reshaped decoder_norm\.weight"):
        average_checkpoints(dirs, cfg)


def test_an_option_added_at_its_default_keeps_a_runs_fingerprint():
    """--resume across an upgrade: a later version's new option, at its default (the old
    behaviour), must not make a run look like another one; set, it must."""
    from dataclasses import dataclass

    from crossattn.config import ModelConfig
    from crossattn.train import TrainConfig, run_fingerprint

    @dataclass
    class LaterModelConfig(ModelConfig):
        a_later_option: bool = False

    data = {"train": ["a.tsv"], "valid": "b.tsv"}
    today = run_fingerprint(ModelConfig(d_model=64, n_heads=2), TrainConfig(lr=1e-3), data)
    assert run_fingerprint(LaterModelConfig(d_model=64, n_heads=2), TrainConfig(lr=1e-3), data) == today
    assert run_fingerprint(LaterModelConfig(d_model=64, n_heads=2, a_later_option=True), TrainConfig(lr=1e-3),
                           data) != today
    assert run_fingerprint(ModelConfig(d_model=64, n_heads=2), TrainConfig(lr=2e-3), data) != today
