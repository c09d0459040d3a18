"""Word-level attention views, aggregation, and ``crossattn attend`` (text, PNG, JSON) on the shipped model."""

from __future__ import annotations

import json

import pytest
import torch

from crossattn import cli
from crossattn.modeldir import PRETRAINED_DIR
from crossattn.attention_views import (AttentionResult, check_index, group_pieces, merge_attention, pieces_to_text,
                                       select, word_view)
from crossattn.visualize import text_table

PIECES = ["\u2581He", "ll", "o", ",", "\u2581how", "\u2581you", "?", "</s>"]


# -- piece -> word merging ----------------------------------------------------------------
def test_group_pieces_words_punctuation_and_eos():
    words, spans = group_pieces(PIECES)
    assert words == ["Hello,", "how", "you?", "</s>"]
    assert spans == [[0, 1, 2, 3], [4], [5, 6], [7]]
    assert group_pieces(PIECES, keep_eos=False) == (["Hello,", "how", "you?"], [[0, 1, 2, 3], [4], [5, 6]])
    words, spans = group_pieces(PIECES, keep_pieces=True)
    assert words == PIECES and spans == [[i] for i in range(8)]


def test_group_pieces_french_spacing_bytes_and_leading_continuation():
    # French "?" is preceded by a space, so it is a word of its own
    assert group_pieces(["\u2581vous", "\u2581?", "</s>"])[0] == ["vous", "?", "</s>"]
    # byte-fallback pieces are decoded into the character they spell
    assert pieces_to_text(["\u2581", "<0xE2>", "<0x82>", "<0xAC>"]) == "\u20ac"
    # a sequence that does not start with "▁" still starts a word
    assert group_pieces(["ab", "cd", "\u2581e"]) == (["abcd", "e"], [[0, 1], [2]])


def test_merge_sums_source_pieces_and_averages_target_pieces():
    # target pieces t0 t1 | t2 ; source pieces s0 | s1 s2 | s3
    attn = torch.tensor([[0.1, 0.2, 0.3, 0.4],
                         [0.5, 0.1, 0.0, 0.4],
                         [0.0, 0.0, 1.0, 0.0]])
    words = merge_attention(attn, [[0, 1], [2]], [[0], [1, 2], [3]])
    expected = torch.tensor([[(0.1 + 0.5) / 2, (0.2 + 0.3 + 0.1 + 0.0) / 2, (0.4 + 0.4) / 2],
                             [0.0, 1.0, 0.0]])
    assert torch.allclose(words, expected, atol=1e-7)
    assert torch.allclose(words.sum(-1), torch.ones(2))  # rows stay distributions
    # leading (layer, head) dimensions are carried through
    stacked = torch.stack([attn, attn.flip(-1)])[None]  # (1, 2, 3, 4)
    merged = merge_attention(stacked, [[0, 1], [2]], [[0], [1, 2], [3]])
    assert merged.shape == (1, 2, 2, 3) and torch.allclose(merged[0, 0], expected)


def test_word_view_of_an_attention_result():
    attention = torch.softmax(torch.randn(2, 3, 4, len(PIECES)), -1)
    result = AttentionResult("Bonjour vous ?", PIECES, ["\u2581Bon", "jour", "\u2581?", "</s>"], attention)
    view = word_view(result)
    assert view.target == ["Bonjour", "?", "</s>"] and view.source == ["Hello,", "how", "you?", "</s>"]
    assert view.attention.shape == (2, 3, 3, 4)
    assert torch.allclose(view.attention[1, 2, 0, 0], attention[1, 2, :2, :4].sum(-1).mean())
    assert torch.allclose(view.attention.sum(-1), torch.ones(2, 3, 3))
    assert word_view(result, keep_eos=False).attention.shape == (2, 3, 2, 3)


# -- aggregation --------------------------------------------------------------------------
def test_select_layers_heads_and_means():
    a = torch.arange(2 * 3 * 1 * 1, dtype=torch.float32).view(2, 3, 1, 1)  # value = 3 * layer + head
    assert select(a, 1, 2).item() == 5
    assert select(a, 0, None).item() == 1  # mean over heads 0, 1, 2
    assert select(a, None, 0).item() == 1.5  # mean over layers 0, 1
    assert select(a).item() == 2.5
    assert select(a, -1, -1).item() == 5
    with pytest.raises(ValueError, match="layer 2 out of range.*2 layers"):
        select(a, 2, None)
    with pytest.raises(ValueError, match="head -4 out of range"):
        check_index(-4, 3, "head")


def test_text_table_names_the_strongest_source_word():
    m = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    lines = text_table(m, ["a", "b", "</s>"], ["x", "y"]).splitlines()
    assert lines[2].split() == ["x", "a", "0.70", "b", "0.20"]
    assert lines[3].split() == ["y", "</s>", "0.80", "a", "0.10"]


# -- the command, on the shipped model -------------------------------------------------------
@pytest.fixture(scope="module")
def attended(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("attend")
    png, js = tmp / "attn.png", tmp / "attn.json"
    assert cli.main(["attend", "Hello, how are you?", "-o", str(png), "--json", str(js), "--device", "cpu"]) == 0
    return png, json.loads(js.read_text(encoding="utf-8"))


def test_attend_writes_a_heatmap(attended):
    png, _ = attended
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000  # a real picture, not an empty canvas


def test_attend_json_schema_matches_the_model(attended):
    _, data = attended
    config = json.loads((PRETRAINED_DIR / "config.json").read_text())["model"]
    attn = torch.tensor(data["attention"])
    n_src, n_tgt = len(data["source_tokens"]), len(data["target_tokens"])
    assert attn.shape == (config["decoder_layers"], config["n_heads"], n_tgt, n_src)
    assert data["source_tokens"][-1] == data["target_tokens"][-1] == "</s>"
    assert torch.allclose(attn.sum(-1), torch.ones(attn.shape[:3]), atol=1e-4)
    assert data["source"] == "Hello, how are you?" and data["translation"]
    words = data["words"]
    assert words["source"] == ["Hello,", "how", "are", "you?", "</s>"]
    w = torch.tensor(words["attention"])
    assert w.shape == (config["decoder_layers"], config["n_heads"], len(words["target"]), len(words["source"]))
    assert sum(len(s) for s in words["target_spans"]) == n_tgt
    assert torch.allclose(torch.tensor(words["selected"]["attention"]), w.mean((0, 1)), atol=1e-5)
    assert words["selected"]["layer"] is None and words["selected"]["head"] is None


def test_attend_text_grid_and_errors(tmp_path, capsys):
    assert cli.main(["attend", "Hello, how are you?", "--layer", "1", "--head", "0", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "layer 1, head 0" in out and "Hello, how are you?" in out and "</s>" in out
    grid = tmp_path / "grid.png"
    assert cli.main(["attend", "Good morning.", "--all", "-o", str(grid), "--device", "cpu"]) == 0
    assert grid.stat().st_size > 50_000  # 3 x 6 heatmaps
    assert cli.main(["attend", "Hello", "--layer", "7", "--device", "cpu"]) == 1
    assert "layer 7 out of range" in capsys.readouterr().err
    assert cli.main(["attend", "Hello", "--all", "--device", "cpu"]) == 1
    assert "--all" in capsys.readouterr().err
    assert cli.main(["attend", "Hello", "--model", str(tmp_path / "missing")]) == 1
    assert "not found" in capsys.readouterr().err


def test_bf16_model_returns_fp32_attention_that_sums_to_one(tiny_run):
    """A bf16 model (what a GPU runs): weights come back in fp32, rows sum to 1 within 1e-5,
    and the translation stays close to fp32's (bf16 tolerance on the logits)."""
    import torch

    from crossattn.torch_engine import TorchTranslator

    bf16 = TorchTranslator.load(tiny_run.out, device="cpu", dtype="bf16")
    fp32 = TorchTranslator.load(tiny_run.out, device="cpu", dtype="fp32")
    result = bf16.translate_with_attention("the big cat sees the dog")
    assert result.attention.dtype == torch.float32
    torch.testing.assert_close(result.attention.sum(-1), torch.ones(result.attention.shape[:3]), atol=1e-5, rtol=0)
    src = torch.tensor([bf16.tokenizer.encode("the big cat sees the dog") + [3]])
    tgt = torch.tensor([[2] + bf16.tokenizer.encode("le grand chat voit le chien")])
    with torch.no_grad():
        a = bf16.model(src, tgt).logits.float().log_softmax(-1)
        b = fp32.model(src, tgt).logits.log_softmax(-1)
    assert (a - b).abs().max() < 0.25  # bf16 keeps ~3 significant digits


# -- word links over the heatmap (attend --links) ------------------------------------------
def test_attend_links_text_png_and_json(tmp_path, capsys):
    """--links: the alignment of both shipped directions' heads, in the text summary, as
    outlines on the PNG and in the JSON, words numbered like the word view."""
    js, png = tmp_path / "links.json", tmp_path / "links.png"
    text = "The cat sleeps on the sofa. It is raining."
    assert cli.main(["attend", text, "--links", "--json", str(js), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "aligned to" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines()[5:] if line.strip()}
    assert rows["chat"][-1] == "cat" and rows["Il"][-1] == "It"  # the second sentence's words too
    words = json.loads(js.read_text(encoding="utf-8"))["words"]
    named = {(words["source"][i], words["target"][j]) for i, j in words["links"]}
    assert {("cat", "chat"), ("sleeps", "dort"), ("It", "Il")} <= named
    assert not any("</s>" in pair for pair in named)  # never to or from an end of sentence
    assert cli.main(["attend", "The cat sleeps on the sofa.", "--links", "-o", str(png), "--device", "cpu"]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_attend_links_without_a_head_is_a_clear_error(tiny_run, capsys):
    assert cli.main(["attend", "a b", "--links", "--model", str(tiny_run.out), "--device", "cpu"]) == 1
    assert "has no alignment head" in capsys.readouterr().err


def test_translation_links_follow_the_view_numbering(shipped_torch_translator):
    """Same links whatever the numbering: words with and without </s>, pieces."""
    from crossattn.align import AlignmentModel, translation_links
    from crossattn.attention_views import word_view

    forward = AlignmentModel.of(shipped_torch_translator.model, shipped_torch_translator.tokenizer, "en-fr")
    result = shipped_torch_translator.translate_with_attention("The cat sleeps on the sofa.")
    named = {}
    for keep_eos, keep_pieces in ((True, False), (False, False), (True, True)):
        view = word_view(result, keep_eos=keep_eos, keep_pieces=keep_pieces)
        links = translation_links(result.source_tokens, result.target_tokens, forward, None, keep_eos=keep_eos,
                                  keep_pieces=keep_pieces)
        named[keep_eos, keep_pieces] = {(view.source[i], view.target[j]) for i, j in links}
    assert named[True, False] == named[False, False] and ("cat", "chat") in named[True, False]
    assert ("\u2581cat", "\u2581chat") in named[True, True]
