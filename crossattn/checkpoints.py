"""Checkpoints of a training run: written whole or not at all, read back exactly.

    OUT/checkpoints/step-N/   model.safetensors, optimizer.safetensors (AdamW state + RNG),
                              state.json (step, data position, best score, optimizer layout)

Each checkpoint is written to ``step-N.tmp`` and renamed into place; old ones are renamed
to ``.del`` before they are deleted. So a crash at any moment leaves only whole
checkpoints under their final names, and ``--resume`` continues from the newest.
"""

from __future__ import annotations

import json
import shutil
from contextlib import contextmanager
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .atomic import crash_point, replace_dir, write_json_atomic
from .config import ModelConfig
from .errors import CrossattnError
from .model import Seq2SeqTransformer, load_weights, save_model


class CheckpointError(CrossattnError, ValueError):
    """Checkpoints that cannot be combined: their weights' names or shapes differ."""




def optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict, dict]:
    """AdamW state as flat tensors (safetensors) + JSON for the rest."""
    sd = opt.state_dict()
    tensors, meta = {}, {"param_groups": sd["param_groups"], "state_keys": {}}
    for idx, st in sd["state"].items():
        meta["state_keys"][str(idx)] = sorted(st)
        for name, value in st.items():
            tensors[f"{idx}.{name}"] = (value if torch.is_tensor(value) else torch.tensor(value)).detach().cpu()
    return tensors, meta


def load_optimizer(opt: torch.optim.Optimizer, tensors: dict, meta: dict) -> None:
    state = {int(i): {n: tensors[f"{i}.{n}"] for n in names} for i, names in meta["state_keys"].items()}
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


@contextmanager
def writing(tmp: Path, what: str):
    """Turn a failed write (full disk, no permission) into one clear error and remove the
    partial copy in ``tmp``; whatever was already in place is left untouched."""
    try:
        yield
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise OSError(e.errno, f"cannot write {what}: {e.strerror or e}; earlier files are kept") from None


class CheckpointStore:
    """The checkpoints under ``root``, oldest first; keeps the newest ``keep_last``."""

    def __init__(self, root: Path, keep_last: int):
        self.root, self.keep_last = root, keep_last

    def all(self) -> list[Path]:
        if not self.root.exists():
            return []
        return sorted(self.root.glob("step-*[0-9]"), key=lambda p: int(p.name.split("-")[1]))

    def latest(self) -> Path | None:
        ckpts = self.all()
        return ckpts[-1] if ckpts else None

    def save(self, step: int, model: Seq2SeqTransformer, opt: torch.optim.Optimizer, device: torch.device,
             state: dict) -> None:
        """Model, optimizer, RNG and ``state`` (JSON) as checkpoint ``step``."""
        self.root.mkdir(parents=True, exist_ok=True)
        final = self.root / f"step-{step:07d}"
        tmp = self.root / f"step-{step:07d}.tmp"
        with writing(tmp, f"checkpoint {final}"):
            if tmp.exists():
                shutil.rmtree(tmp)
            tmp.mkdir()
            save_model(model, tmp / "model.safetensors")
            crash_point("checkpoint-write", step)
            opt_tensors, opt_meta = optimizer_tensors(opt)
            rng = {"torch": torch.get_rng_state()}
            if device.type == "cuda":
                rng["cuda"] = torch.cuda.get_rng_state(device)
            save_file({**opt_tensors, **{f"rng.{k}": v for k, v in rng.items()}}, str(tmp / "optimizer.safetensors"))
            write_json_atomic(tmp / "state.json", {**state, "step": step, "optimizer": opt_meta})
            replace_dir(tmp, final)
        # rename first: a crash mid-delete must not leave a gutted checkpoint under a valid name
        for old in self.all()[: -self.keep_last] + list(self.root.glob("step-*.del")):
            if not old.name.endswith(".del"):
                old = old.rename(old.with_name(old.name + ".del"))
            crash_point("checkpoint-delete", step)
            shutil.rmtree(old)

    @staticmethod
    def load(path: Path, model: Seq2SeqTransformer, opt: torch.optim.Optimizer, device: torch.device) -> dict:
        """Restore model, optimizer and RNG from ``path``; returns its state.json."""
        state = json.loads((path / "state.json").read_text())
        load_weights(model, path / "model.safetensors")
        tensors = load_file(str(path / "optimizer.safetensors"))
        load_optimizer(opt, {k: v.to(device) if not k.endswith(".step") else v for k, v in tensors.items()
                             if not k.startswith("rng.")}, state["optimizer"])
        torch.set_rng_state(tensors["rng.torch"])
        if "rng.cuda" in tensors and device.type == "cuda":
            torch.cuda.set_rng_state(tensors["rng.cuda"], device)
        return state


def average_checkpoints(paths: list[Path], model_cfg: ModelConfig) -> Seq2SeqTransformer:
    """The network whose weights are the mean of the checkpoints' (in float64, then fp32).
    Every checkpoint must hold exactly the weights of ``model_cfg``'s network: a missing,
    unexpected or reshaped tensor is an error naming it, never skipped."""
    model = Seq2SeqTransformer(model_cfg)
    expected = {k: v.shape for k, v in model.state_dict().items() if not (model_cfg.tie_output and k == "output.weight")}
    total: dict[str, torch.Tensor] = {}
    for p in paths:
        sd = load_file(str(p / "model.safetensors"))
        missing, unexpected = sorted(set(expected) - set(sd)), sorted(set(sd) - set(expected))
        reshaped = sorted(k for k in set(sd) & set(expected) if sd[k].shape != expected[k])
        if missing or unexpected or reshaped:
            problems = [f"{what} {', '.join(keys)}" for what, keys in
                        (("missing", missing), ("unexpected", unexpected), ("reshaped", reshaped)) if keys]
            raise CheckpointError(f"{p}: weights do not match the network: {'; '.join(problems)}")
        for k, v in sd.items():
            total[k] = v.double() if k not in total else total[k] + v.double()
    model.load_state_dict({k: (v / len(paths)).float() for k, v in total.items()}, strict=not model_cfg.tie_output)
    return model
