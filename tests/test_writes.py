"""Every file crossattn writes is whole or absent after a kill -9 (issue 28, defect 2).

Each test runs one write in a fresh process that kills itself with SIGKILL at a named
moment of it (atomic.crash_point, ``CROSSATTN_CRASH_AT=name:step``), then checks what is
left under the final name: the previous version, the new one, or nothing, and whatever is
there passes its checksums.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from conftest import REPO, cli_env

# a network small enough to write in well under a second, with the shipped vocabulary
TINY_NETWORK = textwrap.dedent("""
    import sys
    import torch
    from crossattn.config import ModelConfig
    from crossattn.model import Seq2SeqTransformer
    from crossattn.modeldir import PRETRAINED_DIR
    from crossattn.tokenizer import Tokenizer

    tokenizer = Tokenizer(PRETRAINED_DIR / "tokenizer.model")
    torch.manual_seed(int(sys.argv[2]))
    model = Seq2SeqTransformer(ModelConfig(vocab_size=tokenizer.vocab_size, d_model=16, n_heads=2, d_ff=32,
                                           encoder_layers=1, decoder_layers=1, max_positions=32))
""")


def run_python(code: str, *args: str, crash_at: str | None = None) -> subprocess.CompletedProcess:
    env = {**cli_env(), **({"CROSSATTN_CRASH_AT": crash_at} if crash_at else {})}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, cwd=REPO,
                          timeout=300)


def crash(code: str, *args: str, at: str) -> None:
    proc = run_python(code, *args, crash_at=at)
    assert proc.returncode == -signal.SIGKILL, f"no crash at {at} (rc {proc.returncode}): {proc.stderr[-2000:]}"


def write_model_dir(out: Path, seed: int, crash_at: str | None = None) -> None:
    code = TINY_NETWORK + "from crossattn.modeldir import save_model_dir\nsave_model_dir(model, tokenizer, sys.argv[1])\n"
    if crash_at:
        crash(code, str(out), str(seed), at=crash_at)
    else:
        proc = run_python(code, str(out), str(seed))
        assert proc.returncode == 0, proc.stderr


def weights_of(root: Path) -> dict[str, torch.Tensor]:
    """The model directory's weights, after every check load_model_dir makes (checksums too)."""
    from crossattn.modeldir import load_model_dir

    return load_model_dir(root)[0].state_dict()


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def visible_leftovers(folder: Path, final: str) -> list[str]:
    """Names beside ``final`` other than it and the hidden temporary copies a kill leaves."""
    return sorted(p.name for p in folder.iterdir() if p.name != final and not p.name.startswith("."))


# -- model directories (modeldir.save_model_dir) ------------------------------------------
def test_save_model_dir_killed_mid_write_leaves_no_directory(tmp_path):
    out = tmp_path / "model"
    crash_at = "model-dir-write:1"  # weights written, tokenizer and config.json not yet
    write_model_dir(out, seed=1, crash_at=crash_at)
    assert not out.exists()
    write_model_dir(out, seed=1)  # the next run is not confused by what the crash left
    weights_of(out)


@pytest.mark.parametrize("point", ["model-dir-write:1", "replace-dir:1"])
def test_save_model_dir_killed_while_replacing_keeps_a_whole_directory(tmp_path, point):
    """Over an existing directory: killed mid-write, the old one is untouched. Killed at
    the swap: where the system swaps two directories in one step (Linux), the new one is
    in place, whole; elsewhere, killed between the two renames, the final name is empty
    and the old version whole under ``.old``. Never a mixture of the two."""
    out = tmp_path / "model"
    write_model_dir(out, seed=1)
    before = weights_of(out)
    write_model_dir(out, seed=2, crash_at=point)
    if point == "model-dir-write:1":
        assert same_weights(weights_of(out), before)
    elif out.exists():
        assert not same_weights(weights_of(out), before) and not (tmp_path / "model.old").exists()
    else:
        assert same_weights(weights_of(tmp_path / "model.old"), before)
    write_model_dir(out, seed=2)
    assert not same_weights(weights_of(out), before)
    assert visible_leftovers(tmp_path, "model") == []  # no .old once a write succeeds


def test_average_weights_script_writes_its_directory_whole(tmp_path):
    """scripts/average_weights.py calls save_model_dir without train.py's wrapping: a kill
    mid-write still leaves no half-written OUT_DIR (before issue 28 it left weights without
    config.json)."""
    first, second, out = tmp_path / "a", tmp_path / "b", tmp_path / "avg"
    write_model_dir(first, seed=1)
    write_model_dir(second, seed=2)
    script = str(REPO / "scripts" / "average_weights.py")
    args = [script, str(first), str(second), "0.5", str(out)]
    code = f"import runpy, sys\nsys.argv = {args!r}\nrunpy.run_path({script!r}, run_name='__main__')\n"
    crash(code, at="model-dir-write:1")
    assert not out.exists()
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr
    mixed, a, b = weights_of(out), weights_of(first), weights_of(second)
    assert all(torch.allclose(mixed[k], (a[k] + b[k]) / 2, atol=1e-6) for k in a)


# -- the alignment head (align_head.save_alignment_head) -----------------------------------
SAVE_HEAD = TINY_NETWORK + textwrap.dedent("""
    from crossattn.align_head import AlignmentHead, save_alignment_head
    torch.manual_seed(int(sys.argv[2]) + 100)
    out = sys.argv[3] if len(sys.argv) > 3 else None
    save_alignment_head(sys.argv[1], AlignmentHead(16, d_head=4), out)
""")


def head_of(root: Path) -> dict[str, torch.Tensor]:
    """The head's weights, read as every user of the directory reads it: checksums verified."""
    from crossattn.align_head import load_alignment_head
    from crossattn.modeldir import read_model_dir

    root, config, model_cfg, _ = read_model_dir(root)
    return load_alignment_head(root, config, model_cfg.d_model).state_dict()


@pytest.mark.parametrize("point", ["alignment-head:1", "alignment-head:2"])
def test_save_alignment_head_killed_mid_save_leaves_a_directory_that_verifies(tmp_path, point):
    """Before issue 28 the head's file and config.json were renamed one after the other,
    so a kill between them left a head that failed its checksum. Now: killed before the
    commit (config.json replaced), the old head; after it, the new one; both verify."""
    root = tmp_path / "model"
    write_model_dir(root, seed=1)
    proc = run_python(SAVE_HEAD, str(root), "1")
    assert proc.returncode == 0, proc.stderr
    old = head_of(root)
    crash(SAVE_HEAD, str(root), "2", at=point)
    got = head_of(root)
    assert same_weights(got, old) == (point == "alignment-head:1")
    proc = run_python(SAVE_HEAD, str(root), "3")  # and the next save cleans up after the crash
    assert proc.returncode == 0, proc.stderr
    config = json.loads((root / "config.json").read_text())
    assert [p.name for p in root.glob("alignment*")] == [config["alignment"]["file"]]


def test_save_alignment_head_to_a_new_directory_is_whole_or_absent(tmp_path):
    root, out = tmp_path / "model", tmp_path / "with-head"
    write_model_dir(root, seed=1)
    before = sorted((p.name, p.read_bytes()) for p in root.iterdir())
    crash(SAVE_HEAD, str(root), "2", str(out), at="alignment-head:2")
    assert not out.exists()
    proc = run_python(SAVE_HEAD, str(root), "2", str(out))
    assert proc.returncode == 0, proc.stderr
    head_of(out)
    assert same_weights(weights_of(out), weights_of(root))
    assert sorted((p.name, p.read_bytes()) for p in root.iterdir()) == before  # the source is untouched


# -- figures (visualize) and output files (cli) ---------------------------------------------
HEATMAP = textwrap.dedent("""
    import sys
    import torch
    from crossattn.attention_views import AttentionResult, word_view
    from crossattn.visualize import save_heatmap

    torch.manual_seed(int(sys.argv[2]))
    result = AttentionResult("b", ["\u2581a", "</s>"], ["\u2581b", "</s>"], torch.rand(1, 1, 2, 2).softmax(-1))
    save_heatmap(word_view(result), sys.argv[1])
""")


def test_heatmap_killed_mid_write_keeps_the_previous_picture(tmp_path):
    """Heatmaps were drawn in place: a kill mid-draw left a truncated PNG."""
    png = tmp_path / "attention.png"
    crash(HEATMAP, str(png), "1", at="figure-write:1")
    assert not png.exists()
    proc = run_python(HEATMAP, str(png), "1")
    assert proc.returncode == 0, proc.stderr
    before = png.read_bytes()
    assert before.startswith(b"\x89PNG") and before.endswith(b"IEND\xaeB`\x82")  # whole: its end chunk
    crash(HEATMAP, str(png), "2", at="figure-write:1")
    assert png.read_bytes() == before


def test_translate_output_file_killed_before_its_rename_keeps_the_previous_file(tmp_path):
    """``crossattn translate -o FILE`` (and every -o of the CLI, through AtomicOutput)."""
    out = tmp_path / "out.txt"
    args = ["-m", "crossattn", "translate", "-o", str(out), "--dtype", "fp32", "Good morning."]
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=cli_env(), cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr
    before = out.read_text(encoding="utf-8")
    assert before.endswith("\n") and len(before.splitlines()) == 1
    proc = subprocess.run([sys.executable, *args[:-1], "Good evening.", "See you tomorrow."], capture_output=True,
                          text=True, env={**cli_env(), "CROSSATTN_CRASH_AT": "output-write:1"}, cwd=REPO, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert out.read_text(encoding="utf-8") == before
    assert visible_leftovers(tmp_path, "out.txt") == []



def test_a_record_log_leaves_out_a_torn_last_line_and_trims_whole(tmp_path):
    """metrics.jsonl: each record one appended line; bytes after the last newline (a write
    the kill stopped) are not a record, and trimming rewrites the file whole."""
    from crossattn.atomic import append_record, read_records, trim_records

    log = tmp_path / "metrics.jsonl"
    for step in (1, 2, 3):
        append_record(log, {"step": step})
    with open(log, "a") as f:
        f.write('{"step": 4, "lo')
    assert read_records(log) == [{"step": 1}, {"step": 2}, {"step": 3}]
    trim_records(log, lambda r: r["step"] <= 2)
    assert log.read_text() == '{"step": 1}\n{"step": 2}\n'
    append_record(log, {"step": 3})
    assert read_records(log) == [{"step": 1}, {"step": 2}, {"step": 3}]
    log.write_text('{"step": 1}\nnot json\n{"step": 3}\n')
    with pytest.raises(ValueError, match="line 2"):
        read_records(log)
