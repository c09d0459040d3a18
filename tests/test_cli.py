"""End to end through the command line: train, translate, evaluate, in real subprocesses."""

from __future__ import annotations

import json

from conftest import EN_TO_FR, TINY_STEPS, run_cli

# Measured: the session model (tiny, 240 steps) gets 56-59/100 held-out sentences exactly
# right with beam 4 (BLEU ~62); an untrained or broken pipeline gets ~0.
EXACT_MATCH_FLOOR = 0.40


def test_train_writes_a_complete_run(tiny_run):
    out = tiny_run.out
    assert tiny_run.proc.stdout.strip() == str(out / "model")
    assert "1 process(es)" in tiny_run.proc.stderr
    for name in ("config.json", "model.safetensors", "tokenizer.model"):
        assert (out / "model" / name).is_file()
    run = json.loads((out / "run.json").read_text())
    assert run["train"]["max_steps"] == TINY_STEPS and run["model"]["d_model"] == 64
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if "valid_loss" in r]
    assert [r["step"] for r in evals] == list(range(40, TINY_STEPS + 1, 40))
    assert evals[-1]["valid_loss"] < evals[0]["valid_loss"] - 1.0  # it learned something
    ckpts = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert ckpts == [f"step-{TINY_STEPS - 40:07d}", f"step-{TINY_STEPS:07d}"]  # keep_last=2
    assert (out / "curves.png").stat().st_size > 0


def test_translate_file_to_file_keeps_line_structure(tiny_run, tmp_path):
    lines = ["the cat", "", "big red dog", "   ", "", "the man sees the woman", "café ☕ à l'œil"]
    src = tmp_path / "in.txt"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    dst = tmp_path / "out.txt"
    proc = run_cli(["translate", "--model", tiny_run.out, "-i", src, "-o", dst, "--beam", "2"])  # non-ASCII too
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    got = dst.read_text(encoding="utf-8").split("\n")
    assert got[-1] == "" and len(got) - 1 == len(lines)
    got = got[:-1]
    for line, hyp in zip(lines, got):
        assert (hyp == "") == (line.strip() == ""), (line, hyp)
    assert got[0] == "le chat"


def test_translate_stdin_and_arguments(tiny_run):
    proc = run_cli(["translate", "--model", tiny_run.out], input="the cat\n\nthe dog\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n") == ["le chat", "", "le chien", ""]

    proc = run_cli(["translate", "--model", tiny_run.out, "the dog", "the cat", "--beam", "1"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["le chien", "le chat"]


def test_evaluate_reports_scores_and_is_accurate_on_held_out(tiny_run, synth_data, tmp_path):
    hyp_file = tmp_path / "hyps.txt"
    proc = run_cli(["evaluate", "--model", tiny_run.out, "--test", synth_data.test, "--out", hyp_file])
    assert proc.returncode == 0, proc.stderr
    fields = proc.stdout.strip().split("\t")
    assert fields[0].startswith("BLEU ") and fields[1].startswith("chrF ") and fields[2] == "sentences 100"
    bleu, chrf = float(fields[0].split()[1]), float(fields[1].split()[1])

    pairs = [line.split("\t") for line in synth_data.test.read_text().splitlines()]
    hyps = hyp_file.read_text(encoding="utf-8").splitlines()
    assert len(hyps) == len(pairs) == 100
    exact = sum(h == t for h, (_, t) in zip(hyps, pairs)) / len(pairs)
    print(f"held-out exact match {exact:.2f}, BLEU {bleu:.1f}, chrF {chrf:.1f}")
    assert exact >= EXACT_MATCH_FLOOR
    assert bleu > 40 and chrf > 60
    # sanity of the task itself: references are word-by-word substitutions
    assert all(t == " ".join(EN_TO_FR[w] for w in s.split()) for s, t in pairs)


def big_file(path, n: int, seed: int = 5):
    """n generated lines: short, empty, and very long ones (cut and split inside)."""
    import random

    from conftest import EN

    rng = random.Random(seed)
    lines = []
    for i in range(n):
        kind = rng.random()
        if kind < 0.1:
            lines.append("")
        elif kind < 0.12:
            lines.append(". ".join(" ".join(rng.choice(EN) for _ in range(6)) for _ in range(40)))  # ~240 words
        else:
            lines.append(" ".join(rng.choice(EN) for _ in range(rng.randint(1, 6))))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return lines


def test_streaming_a_20k_line_file_keeps_every_line(tiny_run, tmp_path):
    src, dst = tmp_path / "big.txt", tmp_path / "big.fr"
    lines = big_file(src, 20_000)
    proc = run_cli(["translate", "--model", tiny_run.out, "-i", src, "-o", dst, "--beam", "1"], timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = dst.read_text(encoding="utf-8").split("\n")
    assert out[-1] == "" and len(out) - 1 == len(lines)
    for i, (a, b) in enumerate(zip(lines, out)):
        assert (a == "") == (b == ""), f"line {i + 1}: {a!r} -> {b!r}"
    # line i belongs to input line i: spot checks against one-line translations
    picks = [i for i, a in enumerate(lines) if a and len(a) < 40][:5]
    alone = run_cli(["translate", "--model", tiny_run.out, "--beam", "1", *[lines[i] for i in picks]])
    assert alone.stdout.splitlines() == [out[i] for i in picks]
    assert [p.name for p in tmp_path.iterdir() if ".tmp" in p.name] == []


def test_a_killed_translation_never_leaves_a_truncated_file(tiny_run, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    from conftest import REPO, cli_env

    src, dst = tmp_path / "big.txt", tmp_path / "big.fr"
    big_file(src, 20_000, seed=6)
    dst.write_text("the previous translation\n", encoding="utf-8")
    proc = subprocess.Popen([sys.executable, "-m", "crossattn", "translate", "--model", str(tiny_run.out), "-i",
                             str(src), "-o", str(dst), "--beam", "1"], cwd=REPO, env=cli_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # wait until part of the output is written (under its temporary name), then kill
        while not any(p.stat().st_size > 0 for p in tmp_path.glob(".big.fr.tmp-*")):
            assert proc.poll() is None, "translation ended before it could be killed"
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert dst.read_text(encoding="utf-8") == "the previous translation\n"


def test_bad_device_and_dtype_are_usage_errors_naming_the_choices():
    for args, choices in [(["--dtype", "fp16"], "auto"), (["--device", "gpu"], "cpu"), (["--dtype", "float8"], "int8")]:
        proc = run_cli(["translate", *args, "Hello."])
        assert proc.returncode == 2 and proc.stdout == ""
        assert "Traceback" not in proc.stderr and choices in proc.stderr.strip().splitlines()[-1]
    proc = run_cli(["translate", "--device", "cuda", "Hello."])
    import torch

    if not torch.cuda.is_available():
        assert proc.returncode == 2 and "no CUDA GPU" in proc.stderr and "Traceback" not in proc.stderr


def test_a_bug_is_not_reported_as_a_user_error(monkeypatch):
    """cli.main prints one line for the library's CrossattnError only: a ValueError from
    deep inside is a bug and keeps its traceback."""
    import pytest

    from crossattn import cli

    def broken(args):
        raise ValueError("an internal invariant broke")

    monkeypatch.setattr(cli, "cmd_translate", broken)  # the parser is built inside main, with this
    with pytest.raises(ValueError, match="invariant"):
        cli.main(["translate", "x"])
