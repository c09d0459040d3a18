"""MultiHeadAttention against torch.nn.MultiheadAttention, plus its caches and masks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from crossattn.attention import MultiHeadAttention, causal_blocked

D_MODEL, N_HEADS = 32, 4
ATOL = 1e-5


def copy_from_torch(ref: nn.MultiheadAttention, ours: MultiHeadAttention) -> None:
    """nn.MultiheadAttention packs q/k/v into in_proj_*; ours keeps three Linears."""
    with torch.no_grad():
        for proj, w, b in zip(
            (ours.q_proj, ours.k_proj, ours.v_proj), ref.in_proj_weight.chunk(3), ref.in_proj_bias.chunk(3)
        ):
            proj.weight.copy_(w)
            proj.bias.copy_(b)
        ours.out_proj.weight.copy_(ref.out_proj.weight)
        ours.out_proj.bias.copy_(ref.out_proj.bias)


def make_pair(seed: int = 0) -> tuple[MultiHeadAttention, nn.MultiheadAttention]:
    torch.manual_seed(seed)
    ref = nn.MultiheadAttention(D_MODEL, N_HEADS, batch_first=True)
    with torch.no_grad():  # torch initialises the biases to 0: make them matter
        ref.in_proj_bias.normal_()
        ref.out_proj.bias.normal_()
    ours = MultiHeadAttention(D_MODEL, N_HEADS)
    copy_from_torch(ref, ours)
    return ours.eval(), ref.eval()


def padding_mask(lengths: list[int], total: int) -> torch.Tensor:
    """True at padding: row b has lengths[b] real positions."""
    return torch.arange(total)[None, :] >= torch.tensor(lengths)[:, None]


CASES = ["self_padding", "self_causal", "self_causal_padding", "cross_padding"]


@pytest.mark.parametrize("need_weights", [False, True], ids=["fast", "explicit"])
@pytest.mark.parametrize("case", CASES)
def test_matches_torch_multihead_attention(case: str, need_weights: bool) -> None:
    ours, ref = make_pair()
    torch.manual_seed(1)
    batch, tgt_len = 4, 6
    query = torch.randn(batch, tgt_len, D_MODEL)
    kw_ours: dict = {}
    kw_ref: dict = {}
    compare_rows = list(range(batch))
    if case.startswith("cross"):
        src_len = 9  # a different source length
        source = torch.randn(batch, src_len, D_MODEL)
        pad = padding_mask([9, 5, 1, 0], src_len)  # last row: every key is padding
        kw_ours.update(key_padding_mask=pad)
        kw_ref.update(key_padding_mask=pad)
        compare_rows = [0, 1, 2]  # torch gives NaN for the fully masked row
        args_ours, args_ref = (query, source), (query, source, source)
    else:
        args_ours, args_ref = (query,), (query, query, query)
        if case == "self_padding":
            pad = padding_mask([6, 4, 1, 0], tgt_len)
            kw_ours.update(key_padding_mask=pad)
            kw_ref.update(key_padding_mask=pad)
            compare_rows = [0, 1, 2]
        if case.startswith("self_causal"):
            kw_ours.update(causal=True)
            kw_ref.update(attn_mask=causal_blocked(tgt_len, tgt_len, query.device))
        if case == "self_causal_padding":  # causal + padding: the combined-mask branch
            pad = padding_mask([6, 3, 1, 2], tgt_len)
            kw_ours.update(key_padding_mask=pad)
            kw_ref.update(key_padding_mask=pad)

    out, weights, _ = ours(*args_ours, need_weights=need_weights, **kw_ours)
    ref_out, ref_weights = ref(*args_ref, need_weights=True, average_attn_weights=False, **kw_ref)

    assert torch.isfinite(out).all()
    rows = torch.tensor(compare_rows)
    torch.testing.assert_close(out[rows], ref_out[rows], atol=ATOL, rtol=0)
    if need_weights:
        assert weights is not None and weights.shape == ref_weights.shape  # (batch, heads, tgt, src)
        assert torch.isfinite(weights).all()
        torch.testing.assert_close(weights[rows], ref_weights[rows], atol=ATOL, rtol=0)
    else:
        assert weights is None


def test_incremental_self_attention_matches_full_causal() -> None:
    """One position at a time with a growing cache == all positions with a causal mask."""
    ours, _ = make_pair()
    x = torch.randn(3, 7, D_MODEL)
    full, _, _ = ours(x, causal=True)
    past = None
    for t in range(x.size(1)):
        step, w, past = ours(x[:, t : t + 1], causal=True, past=past, need_weights=True)
        assert past.length == t + 1
        assert w.shape == (3, N_HEADS, 1, t + 1)
        torch.testing.assert_close(step[:, 0], full[:, t], atol=ATOL, rtol=0)
    # several new positions at once on top of a cache: the causal mask is end-aligned
    head, _, past = ours(x[:, :3], causal=True)
    tail, _, _ = ours(x[:, 3:], causal=True, past=past)
    torch.testing.assert_close(tail, full[:, 3:], atol=ATOL, rtol=0)


@pytest.mark.parametrize("need_weights", [False, True], ids=["fast", "explicit"])
def test_shared_kv_for_beams_equals_repeated_kv(need_weights: bool) -> None:
    """Queries of beam_size rows per sentence reading one shared K/V row per sentence."""
    ours, _ = make_pair()
    sentences, beams, src_len = 3, 4, 5
    source = torch.randn(sentences, src_len, D_MODEL)
    pad = padding_mask([5, 2, 4], src_len)
    query = torch.randn(sentences * beams, 2, D_MODEL)
    kv = ours.project_kv(source)
    out, w, _ = ours(query, kv=kv, key_padding_mask=pad, need_weights=need_weights)
    rep = source.repeat_interleave(beams, 0)
    ref, ref_w, _ = ours(query, rep, key_padding_mask=pad.repeat_interleave(beams, 0), need_weights=True)
    torch.testing.assert_close(out, ref, atol=ATOL, rtol=0)
    if need_weights:
        torch.testing.assert_close(w, ref_w, atol=ATOL, rtol=0)


@pytest.mark.parametrize("need_weights", [False, True], ids=["fast", "explicit"])
def test_fully_masked_row_is_finite_forward_and_backward(need_weights: bool) -> None:
    ours, _ = make_pair()
    ours.train()
    query = torch.randn(3, 4, D_MODEL, requires_grad=True)
    source = torch.randn(3, 5, D_MODEL, requires_grad=True)
    pad = padding_mask([5, 0, 3], 5)  # row 1: every key is padding
    out, w, _ = ours(query, source, key_padding_mask=pad, need_weights=need_weights)
    assert torch.isfinite(out).all()
    if need_weights:
        assert torch.isfinite(w).all()
        # real rows: padding columns get no weight, rows sum to 1
        assert w[0].sum(-1).sub(1).abs().max() < 1e-5
        assert w[2, ..., 3:].abs().max() < 1e-6
    out.square().sum().backward()
    grads = [query.grad, source.grad] + [p.grad for p in ours.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    # the other rows still get their gradient
    assert query.grad[0].abs().sum() > 0 and source.grad[2, :3].abs().sum() > 0
    # padded keys contribute nothing
    assert source.grad[2, 3:].abs().max() == 0


def test_rejects_indivisible_heads() -> None:
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(30, 4)
