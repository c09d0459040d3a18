"""Bad input, broken model files, full disks and arbitrary text: one clear line, never a crash.

Most cases call ``crossattn.cli.main`` in-process (it is what the console script runs,
including the error handling); a few run a real subprocess to check the exit code and
that no traceback reaches the user.
"""

from __future__ import annotations

import errno
import json
import re
import shutil
import signal
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file

from conftest import REPO, make_pairs, run_cli, write_tsv

from crossattn import cli

pytestmark = pytest.mark.usefixtures("one_thread")


def one_line_error(capsys, rc: int) -> str:
    """The error line; `train` may log progress lines (device, data) before it."""
    err = capsys.readouterr().err.strip()
    assert rc == cli.EXIT_ERROR
    assert "Traceback" not in err
    last = err.splitlines()[-1]
    assert last.startswith("crossattn: error: ") and err.count("crossattn: error:") == 1, err
    return last


@pytest.fixture
def small_data(tmp_path) -> tuple[Path, Path]:
    return write_tsv(tmp_path / "train.tsv", make_pairs(300, seed=5)), write_tsv(tmp_path / "dev.tsv", make_pairs(10, 6))


@pytest.fixture
def in_process_training(monkeypatch, one_thread):
    """Run `crossattn train` in this process, on one thread (restored by one_thread)."""
    monkeypatch.setenv("CROSSATTN_THREADS", "1")

    def train(train: Path, valid: Path, out: Path, *extra: str) -> int:
        return cli.main(["train", "--train", str(train), "--valid", str(valid), "--out", str(out), "--preset", "tiny",
                         "--max-steps", "4", "--eval-every", "2", "--max-tokens", "256", "--device", "cpu",
                         "--dtype", "fp32", *extra])

    return train


def assert_checkpoints_whole(out: Path) -> list[int]:
    steps = []
    for path in sorted((out / "checkpoints").glob("step-*")):
        assert re.fullmatch(r"step-\d+", path.name), f"left behind: {path.name}"
        assert sorted(p.name for p in path.iterdir()) == ["model.safetensors", "optimizer.safetensors", "state.json"]
        load_file(str(path / "model.safetensors"))
        load_file(str(path / "optimizer.safetensors"))
        steps.append(json.loads((path / "state.json").read_text())["step"])
    return steps


# -- malformed data ----------------------------------------------------------------------
def test_malformed_tsv_lines_are_counted_and_reported(small_data, tmp_path, in_process_training, capsys):
    train, dev = small_data
    with open(train, "a", encoding="utf-8") as f:
        f.write("no tab here\nanother line without a tab\nthird one\n\t\nthe cat\t\n   \t le chat\n\n")
    previous_sigterm = signal.getsignal(signal.SIGTERM)
    assert in_process_training(train, dev, tmp_path / "out") == 0
    err = capsys.readouterr().err
    line = next(l for l in err.splitlines() if l.startswith("train: "))
    assert "3 malformed" in line and "4 empty" in line, line
    # the trainer's SIGTERM handler (graceful stop) must not outlive the training
    assert signal.getsignal(signal.SIGTERM) is previous_sigterm


def test_invalid_utf8_training_file_is_one_line_error(small_data, tmp_path):
    train, dev = small_data
    data = train.read_bytes().split(b"\n")
    data[41] = b"caf\xe9 au lait\tcaf\xe9 au lait"  # Latin-1, not UTF-8
    train.write_bytes(b"\n".join(data))
    proc = run_cli(["train", "--train", train, "--valid", dev, "--out", tmp_path / "out", "--max-steps", "1"])
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == f"crossattn: error: {train}:42: invalid UTF-8 (byte 0xe9 at column 4)"


def test_missing_files_are_one_line_errors(small_data, tmp_path, tiny_run, capsys):
    train, dev = small_data
    rc = cli.main(["train", "--train", str(tmp_path / "nope.tsv"), "--valid", str(dev), "--out", str(tmp_path / "o")])
    assert "nope.tsv: no such file" in one_line_error(capsys, rc)
    rc = cli.main(["train", "--train", str(train), "--valid", str(tmp_path / "nodev.tsv"), "--out", str(tmp_path / "o")])
    assert "nodev.tsv: no such file" in one_line_error(capsys, rc)
    rc = cli.main(["translate", "--model", str(tmp_path / "no-model"), "hello"])
    assert "model directory not found" in one_line_error(capsys, rc)
    rc = cli.main(["translate", "--model", str(tiny_run.out), "-i", str(tmp_path / "missing.txt")])
    assert "cannot read" in one_line_error(capsys, rc)


def test_translate_invalid_utf8_input_is_one_line_error(tiny_run, tmp_path, capsys):
    src = tmp_path / "in.txt"
    src.write_bytes(b"the cat\nthe \xff dog\n")
    rc = cli.main(["translate", "--model", str(tiny_run.out), "-i", str(src)])
    assert one_line_error(capsys, rc) == f"crossattn: error: {src}:2: invalid UTF-8"


# -- model directories ---------------------------------------------------------------------
def _flip_byte(d: Path) -> None:
    data = bytearray((d / "model.safetensors").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (d / "model.safetensors").write_bytes(bytes(data))


def _truncate(d: Path) -> None:
    data = (d / "model.safetensors").read_bytes()
    (d / "model.safetensors").write_bytes(data[: len(data) // 3])


def _edit_config(d: Path, change) -> None:
    config = json.loads((d / "config.json").read_text())
    change(config)
    (d / "config.json").write_text(json.dumps(config))


BROKEN_MODEL_DIRS = {
    "byte flipped": (_flip_byte, "model.safetensors: checksum mismatch"),
    "truncated": (_truncate, "model.safetensors: checksum mismatch"),
    "truncated, no checksums": (lambda d: (_truncate(d), _edit_config(d, lambda c: c.pop("files"))),
                                "model.safetensors: cannot read weights"),
    "other d_model": (lambda d: _edit_config(d, lambda c: c["model"].update(d_model=32)), "do not match the config"),
    "other vocabulary": (lambda d: _edit_config(d, lambda c: c["model"].update(vocab_size=999)), "tokenizer has"),
    "missing tokenizer": (lambda d: (d / "tokenizer.model").unlink(), "missing tokenizer.model"),
    "garbage tokenizer": (lambda d: ((d / "tokenizer.model").write_bytes(b"\x00garbage" * 10),
                                     _edit_config(d, lambda c: c.pop("files"))), "cannot load tokenizer"),
    "config not JSON": (lambda d: (d / "config.json").write_text("{model: "), "invalid config"),
    "unknown config key": (lambda d: _edit_config(d, lambda c: c["model"].update(wings=2)), "invalid config"),
}


@pytest.mark.parametrize("command", ["translate", "attend"])  # CTranslate2 and torch engines
@pytest.mark.parametrize("case", BROKEN_MODEL_DIRS)
def test_broken_model_directory_is_one_line_error(case, command, tiny_run, tmp_path, capsys):
    model = tmp_path / "model"
    shutil.copytree(tiny_run.out / "model", model)
    damage, expected = BROKEN_MODEL_DIRS[case]
    damage(model)
    err = one_line_error(capsys, cli.main([command, "--model", str(model), "the cat"]))
    assert expected in err


def test_checksum_error_from_the_real_command(tiny_run, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(tiny_run.out / "model", model)
    _flip_byte(model)
    proc = run_cli(["translate", "--model", model, "the cat"])
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.strip() == f"crossattn: error: {model / 'model.safetensors'}: checksum mismatch (file corrupt or replaced)"


def test_no_pickle_anywhere_in_the_package():
    sources = {p: p.read_text() for p in (REPO / "crossattn").rglob("*.py")}
    assert sources
    for path, text in sources.items():
        assert not re.search(r"^\s*(import|from)\s+(c?pickle|dill|joblib)\b", text, re.M), path
        assert "allow_pickle=True" not in text, path
        for call in re.finditer(r"torch\.(load|serialization\.load)\(", text):
            args = text[call.end(): text.find(")", call.end()) + 1]
            assert "weights_only=True" in args, f"{path}: {text[call.start(): call.end() + len(args)]}"


# -- output directories that cannot be written -----------------------------------------------
def test_output_directory_under_a_file_is_one_line_error(small_data, tmp_path, in_process_training, capsys):
    (tmp_path / "afile").write_text("x")
    rc = in_process_training(*small_data, tmp_path / "afile" / "sub")
    assert "afile" in one_line_error(capsys, rc)


def _fail_nth_call(real, n: int):
    calls = []

    def wrapper(*args, **kwargs):
        calls.append(1)
        if len(calls) == n:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*args, **kwargs)

    return wrapper


def test_full_disk_during_checkpoint_keeps_the_previous_one(small_data, tmp_path, in_process_training, monkeypatch,
                                                            capsys):
    from crossattn import checkpoints

    out = tmp_path / "out"
    with monkeypatch.context() as m:  # the second checkpoint (step 4) hits a full disk
        m.setattr(checkpoints, "save_file", _fail_nth_call(checkpoints.save_file, 2))
        rc = in_process_training(*small_data, out)
    err = one_line_error(capsys, rc)
    assert "step-0000004" in err and "No space left on device" in err, err
    assert assert_checkpoints_whole(out) == [2]
    # and the run can go on from it once there is room again
    assert in_process_training(*small_data, out, "--resume") == 0
    assert "resumed from" in capsys.readouterr().err
    assert assert_checkpoints_whole(out) == [2, 4]


def test_full_disk_while_saving_the_model_directory(small_data, tmp_path, in_process_training, monkeypatch, capsys):
    from crossattn import train as train_module

    out = tmp_path / "out"
    monkeypatch.setattr(train_module, "save_model_dir", _fail_nth_call(train_module.save_model_dir, 1))
    err = one_line_error(capsys, in_process_training(*small_data, out))
    assert "model" in err and "No space left on device" in err, err
    assert not (out / "model").exists() and not (out / "model.tmp").exists()


def test_crash_while_deleting_old_checkpoints_leaves_none_half_deleted(small_data, tmp_path, in_process_training,
                                                                       monkeypatch, capsys):
    """keep_last removes old checkpoints; dying halfway must not leave a checkpoint
    under its final name with files missing (it would be picked up as valid)."""
    from crossattn import train as train_module

    real_rmtree = shutil.rmtree

    def dies_halfway(path, *args, **kwargs):
        path = Path(path)
        if path.is_dir() and (path / "optimizer.safetensors").exists():
            (path / "optimizer.safetensors").unlink()
            raise KeyboardInterrupt  # stands in for SIGKILL: nothing after this runs
        return real_rmtree(path, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(train_module.shutil, "rmtree", dies_halfway)
        assert in_process_training(*small_data, tmp_path / "out", "--max-steps", "6") == 130
    steps = [int(p.name[5:]) for p in (tmp_path / "out" / "checkpoints").iterdir() if re.fullmatch(r"step-\d+", p.name)]
    for step in steps:
        path = tmp_path / "out" / "checkpoints" / f"step-{step:07d}"
        assert (path / "optimizer.safetensors").exists(), f"{path.name} is half deleted"


# -- arbitrary text ----------------------------------------------------------------------------
SPECIAL_TEXTS = ["", " ", "\n", "a\nb", "\t\r\n", "\x00", "\x1b[31mred\x1b[0m", "\u202eevil\u202c", "مرحبا بالعالم",
                 "שלום", "👍🏽👨‍👩‍👧", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "\u2581\u2581", "the\u2028cat", "ﷺ" * 50, "é" * 300]
any_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60)
long_text = st.builds(lambda s, n: s * n, st.text(min_size=1, max_size=6), st.integers(20, 80))
texts = st.lists(st.sampled_from(SPECIAL_TEXTS) | any_text | long_text, max_size=4)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=texts)
def test_translate_never_crashes_and_keeps_one_output_per_input(tiny_translator, batch):
    out = tiny_translator.translate(batch, beam=1 + len(batch) % 2)  # greedy and beam search
    assert len(out) == len(batch) and all(isinstance(o, str) for o in out)
    for text, hyp in zip(batch, out):
        if not text.strip():
            assert hyp == ""


def test_empty_input_gives_empty_output_even_from_an_untrained_model(tiny_translator):
    from crossattn.model import Seq2SeqTransformer
    from crossattn.torch_engine import TorchTranslator as Translator

    for seed in range(3):  # an untrained model happily "translates" nothing into "}}}}}}}}"
        torch.manual_seed(seed)
        untrained = Translator(Seq2SeqTransformer(tiny_translator.model.config), tiny_translator.tokenizer,
                               device="cpu", dtype="fp32")
        for beam in (1, 3):
            out = untrained.translate(["", "   ", "the cat", "\t"], beam=beam)
            assert out[0] == out[1] == out[3] == "", out


line_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\n"), max_size=30)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(st.sampled_from(["", "the cat", "a\u2028b", "x\x85y", "\x0bz\x0c", "\x1c\x1d\x1e", "r\r"])
                      | line_text, max_size=6), trailing_newline=st.booleans())
def test_translate_file_gives_one_output_line_per_input_line(tiny_run, tmp_path_factory, capsys, lines,
                                                             trailing_newline):
    d = tmp_path_factory.mktemp("lines")
    text = "\n".join(lines) + ("\n" if lines and (trailing_newline or lines[-1] == "") else "")
    (d / "in.txt").write_text(text, encoding="utf-8")
    rc = cli.main(["translate", "--model", str(tiny_run.out), "-i", str(d / "in.txt"), "-o", str(d / "out.txt"),
                   "--beam", "1"])
    assert rc == 0, capsys.readouterr().err
    out = (d / "out.txt").read_text(encoding="utf-8")
    assert out.count("\n") == len(lines) and (not out or out.endswith("\n"))


# -- inputs longer than the model ----------------------------------------------------------------
def test_text_longer_than_max_positions_is_translated_in_pieces(tiny_translator):
    from crossattn.modeldir import sentence_chunks

    tr, tok = tiny_translator, tiny_translator.tokenizer
    sentences = "the cat sees the big red dog. " * 20  # several hundred tokens, sentence breaks
    no_breaks = "the man sees the woman " * 40  # no sentence end: cut by length
    for text in (sentences.strip(), no_breaks.strip()):
        ids = tok.encode(text)
        assert len(ids) > 3 * tr.model.config.max_positions
        chunks = sentence_chunks(tok, text, tr.max_source_tokens)
        # every chunk fits the model with its EOS, and together they cover the whole text
        assert len(chunks) >= 3 and all(len(c) + 1 <= tr.max_source_tokens for c in chunks)
        assert tok.decode([i for c in chunks for i in c]) == text
        (out,) = tr.translate([text], beam=2)
        # one output; each chunk contributes (the model only saw 1-6 word sentences, so a
        # 60-token chunk comes out short, but never empty)
        assert "\n" not in out and len(out.split()) >= len(chunks), out
    result = tr.translate_with_attention(sentences)
    assert result.attention.shape[-1] == len(result.source_tokens) <= tr.model.config.max_positions
