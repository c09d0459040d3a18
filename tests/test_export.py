"""CTranslate2 export: the exported model translates like ours (shipped model), scores
like ours (tiny variants: post-LN, GELU, learned positions, untied output), and the
command fails in one line when it cannot run."""

from __future__ import annotations

import sys

import pytest
import torch

ctranslate2 = pytest.importorskip("ctranslate2")

from crossattn.cli import CLIError, main  # noqa: E402
from crossattn.export import export_ctranslate2  # noqa: E402
from crossattn.model import ModelConfig, Seq2SeqTransformer  # noqa: E402
from crossattn.modeldir import PRETRAINED_DIR, normalize  # noqa: E402
from crossattn.translator import Translator, save_model_dir  # noqa: E402

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
]


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    torch.set_num_threads(1)
    out = export_ctranslate2(None, tmp_path_factory.mktemp("ct2") / "en-fr-ct2")
    translator = Translator.load(dtype="fp32")
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(out / "tokenizer.model"))
    engine = ctranslate2.Translator(str(out), device="cpu", intra_threads=1)
    return out, translator, sp, engine


def ct2_translate(sp, engine, texts: list[str], beam: int) -> list[str]:
    batch = [sp.encode(normalize(t), out_type=str) for t in texts]
    results = engine.translate_batch(batch, beam_size=beam, length_penalty=0.4, max_decoding_length=255)
    return [sp.decode(r.hypotheses[0]) for r in results]


def test_export_directory_is_self_contained(shipped):
    out = shipped[0]
    names = {p.name for p in out.iterdir()}
    assert {"model.bin", "config.json", "shared_vocabulary.json", "tokenizer.model", "README.md"} <= names
    assert (out / "tokenizer.model").read_bytes() == (PRETRAINED_DIR / "tokenizer.model").read_bytes()
    assert "translate_batch" in (out / "README.md").read_text()


def test_greedy_translations_match(shipped):
    _, translator, sp, engine = shipped
    ours = translator.translate(SENTENCES, beam=1)
    theirs = ct2_translate(sp, engine, SENTENCES, beam=1)
    assert all(ours), "the shipped model should translate every sentence"
    assert ours == theirs


def test_beam_translations_mostly_match(shipped):
    """Beam search differs only by the form of the length penalty (see the export README)."""
    _, translator, sp, engine = shipped
    ours = translator.translate(SENTENCES, beam=4)
    theirs = ct2_translate(sp, engine, SENTENCES, beam=4)
    same = sum(a == b for a, b in zip(ours, theirs))
    assert same >= 0.9 * len(SENTENCES), list(zip(ours, theirs))


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
    with pytest.raises(CLIError, match="pip install"):
        export_ctranslate2(None, tmp_path / "out")
    assert main(["export", "--format", "ctranslate2", "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("crossattn: error: ctranslate2 is not installed") and "\n" not in err


def test_refuses_to_overwrite_without_force(tmp_path, capsys):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("x")
    assert main(["export", "--out", str(tmp_path / "out")]) == 1
    assert "already exists" in capsys.readouterr().err
    assert (tmp_path / "out" / "keep.txt").exists()
