"""`crossattn explain`: every number in the trace is checked against the model itself."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch

from crossattn import cli
from crossattn.config import ModelConfig
from crossattn.decode import greedy_search
from crossattn.explain import render, trace
from crossattn.model import Seq2SeqTransformer
from crossattn.torch_engine import TorchTranslator as Translator

TEXT = "Hello, how are you?"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def translator(shipped_torch_translator) -> Translator:
    return shipped_torch_translator


@pytest.fixture(scope="module")
def auto(translator) -> dict:
    return trace(translator, TEXT)


@pytest.fixture(scope="module")
def chosen(translator) -> dict:
    return trace(translator, "The cat is sleeping on the red sofa.", step=3, layer=2, head=4)


def teacher_forced(translator: Translator, tr: dict):
    """One plain forward pass over source and greedy output: the reference for every check."""
    src = torch.tensor([tr["source"]["ids"]])
    tgt_in = torch.tensor([[translator.model.config.bos_id] + tr["target"]["ids"][:-1]])
    with torch.inference_mode():
        return translator.model(src, tgt_in, need_weights=True), src


@pytest.mark.parametrize("name", ["auto", "chosen"])
def test_cross_attention_weights_match_the_model(translator, name, request):
    tr = request.getfixturevalue(name)
    out, _ = teacher_forced(translator, tr)
    step, layer, head = tr["step"], tr["layer"], tr["head"]
    expected = out.cross_attention[layer][0, :, step - 1]  # (heads, source)
    ca = tr["cross_attention"]
    torch.testing.assert_close(torch.tensor(ca["weights_all_heads"]), expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.tensor(ca["weights"]), expected[head], atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.tensor(ca["weights_mean"]), expected.mean(0), atol=1e-5, rtol=0)
    # the whole attention tensor equals what `crossattn attend` shows for the greedy translation
    result = translator.translate_with_attention(tr["text"], beam=1)
    assert result.target_tokens == tr["target"]["pieces"]
    torch.testing.assert_close(torch.tensor(tr["attention"]), result.attention, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["auto", "chosen"])
def test_softmax_of_scores_is_the_attention_filter(name, request):
    tr = request.getfixturevalue(name)
    ca = tr["cross_attention"]
    weights = torch.tensor(ca["scores"], dtype=torch.float64).softmax(-1)
    torch.testing.assert_close(weights, torch.tensor(ca["weights"], dtype=torch.float64), atol=2e-5, rtol=0)
    assert math.isclose(sum(ca["weights"]), 1.0, abs_tol=1e-5)
    assert math.isclose(sum(tr["self_attention"]["weights_head"]), 1.0, abs_tol=1e-5)
    assert len(tr["self_attention"]["weights_head"]) == tr["step"]  # BOS + the step - 1 tokens written so far
    assert all(v < 1e-5 for v in tr["checks"].values()), tr["checks"]


@pytest.mark.parametrize("name", ["auto", "chosen"])
def test_shapes_follow_the_config(translator, name, request):
    tr = request.getfixturevalue(name)
    cfg = translator.model.config
    heads, d_head, src_len = cfg.n_heads, cfg.d_model // cfg.n_heads, len(tr["source"]["ids"])
    ca = tr["cross_attention"]
    assert ca["query_input_shape"] == [1, 1, cfg.d_model]
    assert ca["q_shape"] == [1, heads, 1, d_head]
    assert ca["k_shape"] == ca["v_shape"] == [1, heads, src_len, d_head]
    assert ca["context_shape"] == [1, heads, 1, d_head]
    assert ca["concat_shape"] == ca["output_shape"] == [1, 1, cfg.d_model]
    assert len(ca["scores"]) == src_len
    assert tr["feed_forward"]["hidden_shape"] == [1, 1, cfg.d_ff]
    assert tr["output"]["logits_shape"] == [1, cfg.vocab_size]
    enc = tr["encoder"]
    assert len(enc["layers"]) == cfg.encoder_layers
    assert all(layer["shape"] == [1, src_len, cfg.d_model] for layer in enc["layers"])
    assert enc["memory"]["shape"] == enc["input_shape"] == [1, src_len, cfg.d_model]
    assert len(tr["decoder_layers"]) == cfg.decoder_layers
    assert torch.tensor(tr["attention"]).shape == (cfg.decoder_layers, heads, len(tr["steps"]), src_len)


@pytest.mark.parametrize("name", ["auto", "chosen"])
def test_top5_and_chosen_token_match_a_direct_forward_pass(translator, name, request):
    tr = request.getfixturevalue(name)
    out, src = teacher_forced(translator, tr)
    probs = out.logits[0, tr["step"] - 1].softmax(-1)
    top5 = tr["output"]["top5"]
    assert sum(t["prob"] for t in top5) <= 1.0 + 1e-6
    assert [t["prob"] for t in top5] == sorted((t["prob"] for t in top5), reverse=True)
    assert [t["id"] for t in top5] == probs.topk(5).indices.tolist()
    torch.testing.assert_close(torch.tensor([t["prob"] for t in top5]), probs.topk(5).values, atol=1e-4, rtol=0)
    # explain follows greedy decoding: its tokens are greedy_search's, step by step
    greedy = greedy_search(translator.model, src)[0] + [translator.model.config.eos_id]
    assert tr["target"]["ids"] == greedy
    assert tr["chosen"]["id"] == greedy[tr["step"] - 1] == top5[0]["id"]
    assert tr["translation"] == translator.tokenizer.decode(greedy)


def test_encoder_memory_and_cross_kv_cache(translator, auto):
    with torch.inference_mode():
        memory, _ = translator.model.encode(torch.tensor([auto["source"]["ids"]]))
    assert auto["encoder"]["memory"]["mean_norm"] == pytest.approx(float(memory[0].norm(dim=-1).mean()), abs=1e-3)
    assert auto["source"]["pieces"] == [translator.tokenizer.id_to_piece(i) for i in auto["source"]["ids"]]
    assert auto["source"]["pieces"][-1] == "</s>"
    cache = auto["cross_attention"]["cache"]
    assert cache["k_proj_calls_in_start_decoding"] == translator.model.config.decoder_layers
    assert cache["k_proj_calls_during_decoding"] == 0
    assert cache["same_tensor"] and cache["data_ptr_at_start"] == cache["data_ptr_at_step"]


def test_defaults_pick_a_word_with_a_clear_counterpart(auto, chosen):
    token = auto["chosen"]["piece"]
    assert token.startswith("\u2581") and sum(c.isalpha() for c in token) >= 2
    assert auto["cross_attention"]["top_words_mean"][0]["weight"] > 0.5
    assert (auto["step"], auto["layer"], auto["head"]) == tuple(auto["auto"].values())
    assert (chosen["step"], chosen["layer"], chosen["head"]) == (3, 2, 4)


def test_render_follows_the_article_order(auto):
    text = render(auto)
    marks = ["1. Tokenise", "2. Encoder", "3. Decoder", "3a. Masked self-attention", "3b. Cross-attention",
             "3c. Feed-forward", "3d. Linear to the vocabulary", "4. The whole greedy translation"]
    positions = [text.index(m) for m in marks]
    assert positions == sorted(positions)
    assert "greedy" in text and auto["translation"] in text
    assert f"{auto['output']['top5'][0]['prob']:.4f}" in text
    assert "\033[" not in text and "\033[1m" in render(auto, color=True)


def test_bad_arguments(translator):
    with pytest.raises(ValueError, match="step 99 out of range"):
        trace(translator, TEXT, step=99)
    with pytest.raises(ValueError, match="layer 7 out of range"):
        trace(translator, TEXT, layer=7)
    with pytest.raises(ValueError, match="nothing to explain"):
        trace(translator, "   ")


def test_cli_prints_and_writes_json(translator, auto, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(cli, "load_translator", lambda args: translator)
    path = tmp_path / "trace.json"
    assert cli.main(["explain", TEXT, "--json", str(path)]) == 0
    printed = capsys.readouterr().out
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["translation"] == auto["translation"] and data["step"] == auto["step"]
    assert data["cross_attention"]["weights"] == auto["cross_attention"]["weights"]
    assert "3b. Cross-attention" in printed
    assert cli.main(["explain", TEXT, "--step", "0"]) == 1
    assert "step 0 out of range" in capsys.readouterr().err


def test_doc_links_point_at_the_code_they_quote():
    spec = importlib.util.spec_from_file_location("make_figures", ROOT / "docs" / "make_figures.py")
    make_figures = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_figures)
    assert make_figures.check_anchors(fix=False) == []


def test_feed_forward_follows_the_models_activation(translator, auto):
    """The trace names the configured activation and counts active units by its rule."""
    assert auto["feed_forward"]["activation"] == "ReLU" and "-> ReLU (" in render(auto)
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=translator.tokenizer.vocab_size, d_model=32, n_heads=4, d_ff=64, encoder_layers=1,
                      decoder_layers=1, activation="gelu", max_positions=64)
    gelu = Translator(Seq2SeqTransformer(cfg), translator.tokenizer, device="cpu", dtype="fp32")
    inputs = []
    hook = gelu.model.decoder_layers[0].feed_forward.up.register_forward_hook(lambda m, a, out: inputs.append(out))
    try:
        tr = trace(gelu, TEXT, step=2, layer=0, head=0)
    finally:
        hook.remove()
    ff = tr["feed_forward"]
    assert (ff["activation"], tr["model"]["activation"]) == ("GELU", "gelu")
    text = render(tr)
    assert "-> GELU (" in text and "ReLU" not in text
    # step 2's pre-activation: the hook saw each greedy step, then explain's own replay of step 2
    steps = len(tr["target"]["ids"])
    torch.testing.assert_close(inputs[steps], inputs[1])
    assert ff["active_fraction"] == round(float((inputs[1] > 0).float().mean()), 4)
