"""CTranslate2, the translation engine: the Translator (CTranslate2 on our export) gives
the same tokens as the torch network (shipped model and the tiny trained model, greedy
and beam), scores like it (tiny variants: post-LN, GELU, learned positions, untied
output), converts once per model into an atomic cache, and ``export`` never deletes what
it did not write."""

from __future__ import annotations

import sys

import pytest
import torch

ctranslate2 = pytest.importorskip("ctranslate2")

from crossattn.cli import main  # noqa: E402
from crossattn.export import MARKER, ExportError, export_ctranslate2  # noqa: E402
from crossattn.model import ModelConfig, Seq2SeqTransformer  # noqa: E402
from crossattn.modeldir import PRETRAINED_DIR  # noqa: E402
from crossattn.modeldir import save_model_dir  # noqa: E402
from crossattn.torch_engine import TorchTranslator  # noqa: E402
from crossattn.modeldir import cache_root  # noqa: E402
from crossattn.translator import Translator  # noqa: E402

SENTENCES = [
    "Hello, how are you?", "I finished the work.", "You have one hour.", "Where is the station?",
    "She reads a book every week.", "We're getting there.", "This is the perfect location.",
    "Tom took a twenty dollar bill out of his pocket.", "I thought I'd dropped something.",
    "Let's play a new game.", "Can you help me carry this box?", "The weather was nice yesterday.",
    "My brother lives in Paris.", "I don't know what to say.", "It's ten o'clock sharp.",
    "Please close the window.", "They arrived late because of the rain.", "Do you like coffee?",
    "His new novel will come out next month.", "I have never seen such a beautiful sunset.",
    "We need to talk about the budget.", "The children are playing in the garden.",
    "Turn left at the second traffic light.", "Is there a pharmacy near here?",
    "Write to info@example.org. THE OFFICE IS CLOSED TODAY.",  # placeholders and capitals: both engines
]


@pytest.fixture(scope="module")
def shipped(tmp_path_factory, shipped_torch_translator, shipped_translator):
    torch.set_num_threads(1)
    out = export_ctranslate2(None, tmp_path_factory.mktemp("ct2") / "en-fr-ct2")
    return out, shipped_torch_translator, shipped_translator


def test_export_directory_is_self_contained(shipped):
    out = shipped[0]
    names = {p.name for p in out.iterdir()}
    assert {"model.bin", "config.json", "shared_vocabulary.json", "tokenizer.model", "README.md", MARKER} <= names
    assert (out / "tokenizer.model").read_bytes() == (PRETRAINED_DIR / "tokenizer.model").read_bytes()
    assert "translate_batch" in (out / "README.md").read_text()


@pytest.mark.parametrize("beam", [1, 2, 4])
def test_ctranslate2_translations_equal_torch_on_the_shipped_model(shipped, beam):
    _, torch_engine, ct2_engine = shipped
    ours = torch_engine.translate(SENTENCES, beam=beam, alpha=0.6)
    assert all(ours), "the shipped model should translate every sentence"
    assert ct2_engine.translate(SENTENCES, beam=beam, alpha=0.6) == ours


@pytest.mark.parametrize("beam", [1, 3])
def test_ctranslate2_translations_equal_torch_on_the_tiny_model(tiny_run, synth_data, beam):
    sources = [line.split("\t")[0] for line in synth_data.test.read_text().splitlines()][:60]
    torch_out = TorchTranslator.load(tiny_run.out, device="cpu", dtype="fp32").translate(sources, beam=beam, alpha=1.0)
    # the same search: CTranslate2's repetition guard (its own, issue 28) off
    ct2_out = Translator.load(tiny_run.out, device="cpu", dtype="fp32", threads=1).translate(
        sources, beam=beam, alpha=1.0, repetition_guard=False)
    assert ct2_out == torch_out


def test_the_conversion_is_cached_per_checksum(tiny_run):
    first = Translator.load(tiny_run.out, dtype="fp32", threads=1)
    assert first.ct2_dir.parent == cache_root() / "ct2" and (first.ct2_dir / "model.bin").is_file()
    stamp = (first.ct2_dir / "model.bin").stat().st_mtime_ns
    again = Translator.load(tiny_run.out, dtype="fp32", threads=1)
    assert again.ct2_dir == first.ct2_dir and (again.ct2_dir / "model.bin").stat().st_mtime_ns == stamp
    assert not [p for p in first.ct2_dir.parent.iterdir() if ".tmp" in p.name]


@pytest.mark.parametrize("overrides", [
    dict(),
    dict(norm_first=False, activation="gelu", positions="learned", tie_output=False),
])
def test_token_scores_match_tiny_variants(tmp_path, overrides):
    """CT2's score_batch log-probs equal our teacher-forced log_softmax, token by token."""
    from crossattn.tokenizer import Tokenizer

    tokenizer = Tokenizer(PRETRAINED_DIR / "tokenizer.model")
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=tokenizer.vocab_size, d_model=32, n_heads=4, d_ff=64, encoder_layers=2,
                      decoder_layers=2, dropout=0.0, max_positions=64, **overrides)
    model = Seq2SeqTransformer(cfg).eval()
    with torch.no_grad():  # non-trivial norms and biases, so a mis-mapped weight shows
        for name, p in model.named_parameters():
            if "norm" in name or name.endswith("bias"):
                p.add_(torch.randn_like(p) * 0.1)
    save_model_dir(model, tokenizer, tmp_path / "model")
    out = export_ctranslate2(tmp_path / "model", tmp_path / "ct2")
    engine = ctranslate2.Translator(str(out), device="cpu", intra_threads=1)

    pairs = [("Hello, how are you?", "Bonjour, comment allez-vous ?"), ("Two cats.", "Deux chats sur le toit.")]
    src_ids = [tokenizer.encode(s) for s, _ in pairs]
    tgt_ids = [tokenizer.encode(t) for _, t in pairs]
    piece = tokenizer.id_to_piece
    results = engine.score_batch([[piece(i) for i in s] for s in src_ids], [[piece(i) for i in t] for t in tgt_ids])
    for s, t, r in zip(src_ids, tgt_ids, results):
        with torch.no_grad():
            logits = model(torch.tensor([s + [cfg.eos_id]]), torch.tensor([[cfg.bos_id] + t])).logits[0]
        # CT2 scores the target tokens and the final </s>
        ours = logits.log_softmax(-1).gather(1, torch.tensor(t + [cfg.eos_id])[:, None]).squeeze(1)
        assert len(r.log_probs) == len(ours)
        torch.testing.assert_close(torch.tensor(r.log_probs), ours, atol=2e-4, rtol=1e-4)


def test_missing_ctranslate2_is_one_line_error(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ctranslate2", None)  # makes `import ctranslate2` fail
    with pytest.raises(ExportError, match="pip install"):
        export_ctranslate2(None, tmp_path / "out")
    assert main(["export", "--format", "ctranslate2", "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("crossattn: error: ctranslate2 is not installed") and "\n" not in err


def test_refuses_to_overwrite_without_force(tmp_path, capsys):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("x")
    assert main(["export", "--out", str(tmp_path / "out")]) == 1
    assert "already exists" in capsys.readouterr().err


def test_force_never_replaces_a_directory_it_did_not_write(tmp_path, capsys):
    home = tmp_path / "home"
    (home / "photos").mkdir(parents=True)
    (home / "photos" / "cat.jpg").write_bytes(b"meow")
    (home / "notes.txt").write_text("keep me")
    assert main(["export", "--out", str(home), "--force"]) == 1
    assert "not a directory written by crossattn export" in capsys.readouterr().err
    assert (home / "notes.txt").read_text() == "keep me" and (home / "photos" / "cat.jpg").read_bytes() == b"meow"


def test_force_replaces_an_earlier_export(tmp_path):
    out = tmp_path / "ct2"
    export_ctranslate2(None, out)
    (out / "stale.txt").write_text("from the old export")
    export_ctranslate2(None, out, force=True)
    assert (out / MARKER).is_file() and not (out / "stale.txt").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["ct2"]  # no temporary or old copies left


def test_argos_package_installs_and_translates_offline(tmp_path):
    """`crossattn export --format argos` -> argostranslate installs it and translates with
    it, with nothing downloaded (its spaCy sentence splitter is in the package)."""
    pytest.importorskip("argostranslate", reason="argostranslate is not installed (pip install argostranslate)")
    import subprocess

    package = tmp_path / "en_fr.argosmodel"
    assert main(["export", "--format", "argos", "--out", str(package)]) == 0
    home = tmp_path / "home"
    # Argos caches spaCy's multilingual model at import in SPACY mode; an existing cache
    # entry keeps it from trying the network (the package's own splitter is what is used)
    (home / "cache" / "argos-translate" / "spacy" / "senter" / "model").mkdir(parents=True)
    script = ("import argostranslate.package as p, argostranslate.translate as t; "
              f"p.install_from_path({str(package)!r}); "
              "print(t.translate('I went to the market this morning. It was raining, so I took an umbrella.', 'en', 'fr'))")
    env = {"HOME": str(home), "XDG_DATA_HOME": str(home / "data"), "XDG_CACHE_HOME": str(home / "cache"),
           "XDG_CONFIG_HOME": str(home / "config"), "ARGOS_CHUNK_TYPE": "SPACY", "PATH": "/usr/bin:/bin",
           "OMP_NUM_THREADS": "1", "ARGOS_INTRA_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout.strip()
    assert "marché" in out and "parapluie" in out, out
    assert "raw.githubusercontent.com" not in proc.stderr and "Downloading" not in proc.stderr


def test_argos_export_refuses_other_files(tmp_path, capsys):
    target = tmp_path / "notes.argosmodel"
    target.write_text("my notes")
    assert main(["export", "--format", "argos", "--out", str(target), "--force"]) == 1
    assert "not an Argos package" in capsys.readouterr().err and target.read_text() == "my notes"


@pytest.mark.parametrize("stored", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
def test_sixteen_bit_model_directory_loads_as_fp32(tmp_path, stored):
    """Shipped models store 16-bit weights (scripts/ship_model.py); they load into the
    fp32 network, rounded no more than the format's precision (fp16 is 8x finer than bf16)."""
    from crossattn.modeldir import load_model_dir
    from crossattn.tokenizer import Tokenizer

    tokenizer = Tokenizer(PRETRAINED_DIR / "tokenizer.model")
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=tokenizer.vocab_size, d_model=32, n_heads=4, d_ff=64, encoder_layers=1,
                      decoder_layers=1, dropout=0.0, max_positions=64)
    model = Seq2SeqTransformer(cfg).eval()
    save_model_dir(model, tokenizer, tmp_path / "model", dtype=stored)
    loaded = load_model_dir(tmp_path / "model")[0]
    relative = 2.0 ** -10 if stored == torch.float16 else 2.0 ** -7  # half an ulp of each format, with margin
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert b.dtype == torch.float32, name
        assert ((a - b).abs() <= relative * a.abs() + 1e-7).all(), name
