"""The NumPy engine (numpy_engine.py) computes what the torch model computes.

Same logits for every architecture variant and storage dtype, same hypotheses from
the same search, same translations from the shipped model, and a command line that
never imports torch for it.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from crossattn.config import ModelConfig
from crossattn.decode import beam_search as torch_beam_search
from crossattn.model import Seq2SeqTransformer, save_model
from crossattn.numpy_engine import NumpyModel, NumpyTranslator, beam_search, load_safetensors
from crossattn.translator import Translator

from conftest import SHARED_DATA, cli_env, make_pairs

VARIANTS = {
    "pre-LN relu sinusoidal tied": {},
    "post-LN gelu learned untied": dict(norm_first=False, activation="gelu", positions="learned", tie_output=False),
}


def random_model(seed: int = 0, **options) -> Seq2SeqTransformer:
    torch.manual_seed(seed)
    sizes = dict(vocab_size=50, d_model=32, n_heads=4, d_ff=64, encoder_layers=2, decoder_layers=2, max_positions=64)
    cfg = ModelConfig(**{**sizes, **options})
    return Seq2SeqTransformer(cfg).eval()


@pytest.mark.parametrize("storage", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("variant", VARIANTS)
def test_encoder_and_decoder_steps_match_torch(variant, storage, tmp_path, one_thread):
    model = random_model(**VARIANTS[variant])
    save_model(model, tmp_path / "w.safetensors", storage)
    with torch.no_grad():  # the torch reference sees the same stored values (buffers are not stored)
        for p in model.parameters():
            p.copy_(p.to(storage).float())
    engine = NumpyModel(model.config, load_safetensors(tmp_path / "w.safetensors"))

    src = [5, 9, 12, 7, 30, 3]
    with torch.inference_mode():
        memory, _ = model.encode(torch.tensor([src]))
        np.testing.assert_allclose(engine.encode(src), memory[0].numpy(), atol=1e-4)
        state, np_state = model.start_decoding(memory, None, beam_size=2), engine.start_decoding(engine.encode(src))
        for tokens, reorder in [([2, 2], [0, 0]), ([8, 11], [1, 0]), ([4, 4], [1, 1]), ([20, 6], [0, 1])]:
            logits, _ = model.decode_step(torch.tensor(tokens)[:, None], state)
            np.testing.assert_allclose(engine.decode_step(np.array(tokens), np_state), logits.numpy(), atol=1e-4)
            state.reorder_beams(torch.tensor(reorder))
            engine.reorder_beams(np_state, np.array(reorder))


def test_weights_are_checked_against_the_config(tmp_path):
    model = random_model()
    save_model(model, tmp_path / "w.safetensors")
    weights = load_safetensors(tmp_path / "w.safetensors")
    with pytest.raises(ValueError, match="do not match the config: missing"):
        NumpyModel(random_model(decoder_layers=3).config, weights)
    with pytest.raises(ValueError, match="has shape"):
        NumpyModel(random_model(d_ff=128).config, weights)
    (tmp_path / "bad.safetensors").write_bytes((tmp_path / "w.safetensors").read_bytes()[:5000])
    with pytest.raises(ValueError, match="cannot read weights"):
        load_safetensors(tmp_path / "bad.safetensors")


@pytest.mark.parametrize("beam", [1, 2, 4])
def test_search_picks_the_same_hypotheses_as_torch(beam, tiny_translator, one_thread):
    """On the tiny trained model: real (peaked) distributions, so float noise cannot swap
    the ranking, and a real stopping pattern (EOS at different steps per beam)."""
    engine = NumpyModel(tiny_translator.model.config,
                        {k: v.numpy() for k, v in tiny_translator.model.state_dict().items() if k != "output.weight"})
    tok = tiny_translator.tokenizer
    for en, _ in make_pairs(25, seed=7):
        src = tok.encode(en) + [3]
        expected = torch_beam_search(tiny_translator.model, torch.tensor([src]), beam, 0.6)[0]
        assert beam_search(engine, src, beam, 0.6) == expected, en


def test_long_input_is_split_the_same_way(tiny_run):
    text = "the cat sees the big red dog. " * 20 + "the man sees the woman " * 30
    numpy_out = NumpyTranslator.load(tiny_run.out).translate([text, "", "the cat"], beam=2)
    torch_out = Translator.load(tiny_run.out, device="cpu", dtype="fp32").translate([text, "", "the cat"], beam=2)
    assert numpy_out == torch_out and numpy_out[1] == "" and numpy_out[2] == "le chat"


def shipped_model_inputs() -> list[str]:
    inputs = ["Hello, how are you?", "I am hungry.", "Tom doesn't like cheese.", "Where is the station?",
              "A man in a blue shirt is standing on a ladder cleaning windows.", "It's 5 o'clock.", "Thank you!",
              "The 3 children are playing in the park with their dog, Max."]
    dev = SHARED_DATA / "tatoeba" / "dev.tsv"
    if dev.exists():  # plus 40 real dev sentences
        inputs += [line.split("\t")[0] for line in dev.read_text(encoding="utf-8").splitlines()[:40]]
    return inputs


def test_shipped_model_translations_are_identical(shipped_translator, one_thread):
    inputs = shipped_model_inputs()
    numpy_out = NumpyTranslator.load().translate(inputs)
    assert numpy_out == shipped_translator.translate(inputs)
    assert numpy_out[0] == "Bonjour, comment êtes-vous ?"


def test_command_line_translates_without_importing_torch():
    code = ("import sys; from crossattn.cli import main; code = main(['translate', 'Hello, how are you?']); "
            "assert 'torch' not in sys.modules, 'torch was imported'; sys.exit(code)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=cli_env(), timeout=120)
    assert out.returncode == 0, out.stderr
    torch_out = subprocess.run([sys.executable, "-m", "crossattn", "translate", "--engine", "torch", "Hello, how are you?"],
                               capture_output=True, text=True, env=cli_env(), timeout=120)
    assert out.stdout == torch_out.stdout == "Bonjour, comment êtes-vous ?\n"


def test_numpy_engine_refuses_other_devices_and_dtypes():
    for option in (["--device", "cuda"], ["--dtype", "int8"]):
        out = subprocess.run([sys.executable, "-m", "crossattn", "translate", "--engine", "numpy", *option, "Hi."],
                             capture_output=True, text=True, env=cli_env(), timeout=120)
        assert out.returncode == 1 and out.stdout == ""
        assert out.stderr.strip() == "crossattn: error: --engine numpy runs on the CPU in fp32 only (--device cpu, --dtype fp32)"


def test_auto_engine_rule():
    from crossattn.cli import NUMPY_MAX_SENTENCES, build_parser, use_numpy_engine

    parse = lambda *a: build_parser(extensions=False).parse_args(["translate", *a])  # noqa: E731
    assert use_numpy_engine(parse("Hi."), 1) and use_numpy_engine(parse("-i", "f.txt"), NUMPY_MAX_SENTENCES)
    assert not use_numpy_engine(parse("-i", "f.txt"), NUMPY_MAX_SENTENCES + 1)  # many lines: batched torch
    assert not use_numpy_engine(parse("-i", "f.txt"), 0)
    for options in (["--dtype", "int8"], ["--dtype", "bf16"], ["--device", "cuda"], ["--engine", "torch"]):
        assert not use_numpy_engine(parse(*options, "Hi."), 1), options
    assert use_numpy_engine(parse("--engine", "numpy", "-i", "f.txt"), 1000)


def test_standard_input_of_a_few_lines_skips_torch_too():
    code = ("import sys; from crossattn.cli import main; code = main(['translate']); "
            "assert 'torch' not in sys.modules, 'torch was imported'; sys.exit(code)")
    out = subprocess.run([sys.executable, "-c", code], input="I am hungry.\n\nThank you!\n", capture_output=True,
                         text=True, env=cli_env(), timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:3] == ["J'ai faim.", "", "Merci !"]


@pytest.mark.parametrize("engine", ["numpy", "torch"])
def test_bad_beam_is_the_same_one_line_error_on_both_engines(engine, tiny_run, capsys):
    from crossattn.cli import main

    for beam in ("0", "-2"):
        assert main(["translate", "--engine", engine, "--model", str(tiny_run.out), "--beam", beam, "the cat"]) == 1
        captured = capsys.readouterr()
        assert captured.out == "" and captured.err == f"crossattn: error: beam must be a positive integer, not {beam}\n"
