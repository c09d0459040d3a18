"""Seq2SeqTransformer: equivalence with torch.nn.Transformer, masking, incremental decoding,
gradients, config/weights I/O, and a reversal task that only cross-attention can solve."""

from __future__ import annotations

import time
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from crossattn.attention import MultiHeadAttention, causal_blocked
from crossattn.model import ModelConfig, Seq2SeqTransformer, load_weights, save_model

ATOL = 1e-5
PAD, UNK, BOS, EOS = 0, 1, 2, 3


def tiny_config(**overrides) -> ModelConfig:
    kw = dict(
        vocab_size=40, d_model=32, n_heads=4, d_ff=64, encoder_layers=2, decoder_layers=2,
        dropout=0.0, max_positions=64,
    )
    kw.update(overrides)
    return ModelConfig(**kw)


def tiny_model(seed: int = 0, **overrides) -> Seq2SeqTransformer:
    torch.manual_seed(seed)
    return Seq2SeqTransformer(tiny_config(**overrides)).eval()


def random_ids(lengths: list[int], width: int, vocab: int = 40, seed: int = 0) -> torch.Tensor:
    """Rows of random non-special ids, row b real for lengths[b] positions then PAD."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(4, vocab, (len(lengths), width), generator=g)
    return ids.masked_fill(torch.arange(width)[None] >= torch.tensor(lengths)[:, None], PAD)


def random_tgt(batch: int, length: int, vocab: int = 40, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    tgt = torch.randint(4, vocab, (batch, length), generator=g)
    tgt[:, 0] = BOS
    return tgt


# -- 2. equivalence with torch.nn.Transformer ------------------------------------------


def copy_attention(ours: MultiHeadAttention, ref: nn.MultiheadAttention) -> None:
    ref.in_proj_weight.copy_(torch.cat([ours.q_proj.weight, ours.k_proj.weight, ours.v_proj.weight]))
    ref.in_proj_bias.copy_(torch.cat([ours.q_proj.bias, ours.k_proj.bias, ours.v_proj.bias]))
    ref.out_proj.weight.copy_(ours.out_proj.weight)
    ref.out_proj.bias.copy_(ours.out_proj.bias)


def copy_linear(ours: nn.Module, ref: nn.Module) -> None:  # Linear or LayerNorm
    ref.weight.copy_(ours.weight)
    ref.bias.copy_(ours.bias)


def torch_twin(model: Seq2SeqTransformer) -> nn.Transformer:
    """An nn.Transformer carrying our weights."""
    cfg = model.config
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # enable_nested_tensor / norm_first notice
        ref = nn.Transformer(
            cfg.d_model, cfg.n_heads, cfg.encoder_layers, cfg.decoder_layers, cfg.d_ff,
            dropout=0.0, activation="relu", batch_first=True, norm_first=cfg.norm_first,
        )
    with torch.no_grad():
        for ours, theirs in zip(model.encoder_layers, ref.encoder.layers):
            copy_attention(ours.self_attn, theirs.self_attn)
            copy_linear(ours.feed_forward.up, theirs.linear1)
            copy_linear(ours.feed_forward.down, theirs.linear2)
            copy_linear(ours.attn_sub.norm, theirs.norm1)
            copy_linear(ours.ff_sub.norm, theirs.norm2)
        for ours, theirs in zip(model.decoder_layers, ref.decoder.layers):
            copy_attention(ours.self_attn, theirs.self_attn)
            copy_attention(ours.cross_attn, theirs.multihead_attn)
            copy_linear(ours.feed_forward.up, theirs.linear1)
            copy_linear(ours.feed_forward.down, theirs.linear2)
            copy_linear(ours.self_sub.norm, theirs.norm1)
            copy_linear(ours.cross_sub.norm, theirs.norm2)
            copy_linear(ours.ff_sub.norm, theirs.norm3)
        if cfg.norm_first:
            copy_linear(model.encoder_norm, ref.encoder.norm)
            copy_linear(model.decoder_norm, ref.decoder.norm)
        else:  # nn.Transformer adds a final LayerNorm even in post-LN; our post-LN has none
            ref.encoder.norm = nn.Identity()
            ref.decoder.norm = nn.Identity()
    return ref.eval()


@pytest.mark.filterwarnings("ignore:The PyTorch API of nested tensors")
@pytest.mark.parametrize("norm_first", [False, True], ids=["post_ln", "pre_ln"])
def test_matches_torch_transformer(norm_first: bool) -> None:
    model = tiny_model(norm_first=norm_first)
    with torch.no_grad():  # LayerNorms start at 1/0 and biases small: make every weight count
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    ref = torch_twin(model)

    src = random_ids([7, 4, 6], 7)
    tgt = random_tgt(3, 5)
    src_pad = src.eq(PAD)
    tgt_mask = causal_blocked(5, 5, src.device)
    real = ~src_pad

    with torch.no_grad():
        x = model.embed(src)
        h = x
        for layer in model.encoder_layers:
            h = layer(h, src_pad)
        ours_memory = model.encoder_norm(h)
        ref_memory = ref.encoder(x, src_key_padding_mask=src_pad)
        torch.testing.assert_close(ours_memory[real], ref_memory[real], atol=ATOL, rtol=0)
        torch.testing.assert_close(model.encode(src)[0][real], ref_memory[real], atol=ATOL, rtol=0)

        y = model.embed(tgt)
        h = y
        for layer in model.decoder_layers:
            h, _, _ = layer(h, ours_memory, src_pad)
        ours_dec = model.decoder_norm(h)
        ref_dec = ref.decoder(
            y, ours_memory, tgt_mask=tgt_mask, memory_key_padding_mask=src_pad, tgt_is_causal=True
        )
        torch.testing.assert_close(ours_dec, ref_dec, atol=ATOL, rtol=0)

        # and the whole model, end to end
        ref_logits = model.output(
            ref(x, y, src_key_padding_mask=src_pad, tgt_mask=tgt_mask, memory_key_padding_mask=src_pad)
        )
        torch.testing.assert_close(model(src, tgt).logits, ref_logits, atol=ATOL, rtol=0)


# -- 3. padding invariance, 4. causality --------------------------------------------------


@pytest.mark.parametrize("need_weights", [False, True], ids=["fast", "explicit"])
def test_source_padding_invariance(need_weights: bool) -> None:
    model = tiny_model()
    src = random_ids([6, 4], 6)  # row 1 already padded
    src_unpadded = src[:1]  # no padding at all: the model skips the mask (None) here
    tgt = random_tgt(2, 5)
    extra = torch.zeros(2, 3, dtype=torch.long)  # three more PAD columns
    with torch.no_grad():
        for base, base_tgt in ((src, tgt), (src_unpadded, tgt[:1])):
            more = torch.cat([base, extra[: base.size(0)]], 1)
            a = model(base, base_tgt, need_weights=need_weights)
            b = model(more, base_tgt, need_weights=need_weights)
            torch.testing.assert_close(b.logits, a.logits, atol=ATOL, rtol=0)
            if need_weights:
                for wa, wb in zip(a.cross_attention, b.cross_attention):
                    n = base.size(1)
                    torch.testing.assert_close(wb[..., :n], wa, atol=1e-6, rtol=0)
                    assert wb[..., n:].abs().max() < 1e-6  # padding columns get ~0 weight
                    pad_cols = base.eq(PAD)[:, None, None, :].expand_as(wa)
                    assert (wa * pad_cols).abs().max() < 1e-6  # already-padded columns too
            else:
                assert a.cross_attention is None


@pytest.mark.parametrize("need_weights", [False, True], ids=["fast", "explicit"])
def test_decoder_is_causal(need_weights: bool) -> None:
    model = tiny_model()
    src = random_ids([6, 3], 6)
    tgt = random_tgt(2, 8)
    changed = tgt.clone()
    changed[:, 5:] = random_tgt(2, 8, seed=7)[:, 5:]
    assert not torch.equal(changed[:, 5:], tgt[:, 5:])
    with torch.no_grad():
        a = model(src, tgt, need_weights=need_weights)
        b = model(src, changed, need_weights=need_weights)
    torch.testing.assert_close(b.logits[:, :5], a.logits[:, :5], atol=ATOL, rtol=0)
    assert (b.logits[:, 5:] - a.logits[:, 5:]).abs().max() > 1e-3  # later positions did change
    if need_weights:
        for wa, wb in zip(a.cross_attention, b.cross_attention):
            torch.testing.assert_close(wb[:, :, :5], wa[:, :, :5], atol=ATOL, rtol=0)


# -- 5. incremental decoding ---------------------------------------------------------------


@pytest.mark.parametrize("need_weights", [False, True], ids=["fast", "explicit"])
@pytest.mark.parametrize("beam_size", [1, 3])
def test_incremental_decoding_matches_full_forward(beam_size: int, need_weights: bool) -> None:
    model = tiny_model(positions="learned")  # learned positions: a wrong offset cannot hide
    g = torch.Generator().manual_seed(5)
    src = random_ids([7, 3, 5], 7)  # sentences
    k = beam_size
    with torch.no_grad():
        memory, src_pad = model.encode(src)
        state = model.start_decoding(memory, src_pad, beam_size=k)
        cross = [(c.k, c.v) for c in state.cross_kv]
        for kk, vv in cross:  # one copy per sentence, not per beam
            assert kk.size(0) == vv.size(0) == src.size(0)

        # from here on the cross-attention key/value projections must never run again
        projections = []
        for layer in model.decoder_layers:
            for proj in (layer.cross_attn.k_proj, layer.cross_attn.v_proj):
                proj.register_forward_hook(lambda *_: projections.append(1))

        sent_src = src
        history = torch.full((src.size(0) * k, 1), BOS)  # rows = sentences * beams
        tokens = history
        for step in range(7):
            projections.clear()
            logits, weights = model.decode_step(tokens, state, need_weights=need_weights)
            assert not projections, "decode_step re-projected the cross-attention keys/values"
            full = model(sent_src.repeat_interleave(k, 0), history, need_weights=need_weights)
            torch.testing.assert_close(logits, full.logits[:, -1], atol=ATOL, rtol=0)
            assert state.length == history.size(1)
            if need_weights:
                assert len(weights) == len(model.decoder_layers)
                for w_step, w_full in zip(weights, full.cross_attention):
                    assert w_step.shape == (history.size(0), model.config.n_heads, 1, src.size(1))
                    torch.testing.assert_close(w_step[:, :, 0], w_full[:, :, -1], atol=ATOL, rtol=0)
            else:
                assert weights is None

            if step == 2 and k > 1:  # beam search reorders hypotheses within each sentence
                n = sent_src.size(0)
                perms = [torch.tensor([2, 0, 0]), torch.tensor([1, 2, 0]), torch.tensor([0, 0, 1])]
                rows = torch.cat([s * k + perms[s] for s in range(n)])
                state.reorder_beams(rows)
                history = history[rows]
            if step == 4:  # sentence 1 finished: drop it
                keep = torch.tensor([0, 2])
                state.keep_sentences(keep)
                sent_src = sent_src[keep]
                rows = (keep[:, None] * k + torch.arange(k)).flatten()
                history = history[rows]
                for c in state.cross_kv:
                    assert c.k.size(0) == c.v.size(0) == 2
                cross = [(c.k, c.v) for c in state.cross_kv]
            else:  # computed once: the very same tensors at every step
                for c, (kk, vv) in zip(state.cross_kv, cross):
                    assert c.k is kk and c.v is vv

            tokens = torch.randint(4, model.config.vocab_size, (history.size(0), 1), generator=g)
            history = torch.cat([history, tokens], 1)


# -- 6. no NaN with an all-padding source ---------------------------------------------------


@pytest.mark.parametrize("need_weights", [False, True], ids=["fast", "explicit"])
def test_all_padding_source_row_is_finite(need_weights: bool) -> None:
    model = tiny_model().train()
    src = random_ids([6, 0, 4], 6)  # row 1: the source is nothing but padding
    tgt = random_tgt(3, 5)
    out = model(src, tgt, need_weights=need_weights)
    assert torch.isfinite(out.logits).all()
    if need_weights:
        assert all(torch.isfinite(w).all() for w in out.cross_attention)
    loss = F.cross_entropy(out.logits[:, :-1].reshape(-1, 40), tgt[:, 1:].reshape(-1), ignore_index=PAD)
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


# -- 7. every parameter learns ------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        dict(positions="sinusoidal"),
        dict(positions="learned"),
        dict(tie_output=False),
        dict(positions="learned", tie_output=False, norm_first=False),
    ],
    ids=["sinusoidal", "learned", "untied", "learned_untied_post_ln"],
)
def test_every_parameter_gets_a_gradient(overrides: dict) -> None:
    model = tiny_model(**overrides).train()
    if model.config.tie_output:
        assert model.output.weight is model.embed.tokens.weight
    names = [n for n, _ in model.named_parameters()]  # tied weights appear once
    assert ("output.weight" in names) == (not model.config.tie_output)
    assert ("embed.positions" in names) == (model.config.positions == "learned")
    src = random_ids([6, 4, 5], 6)
    tgt = random_tgt(3, 6)
    tgt[1, 4:] = PAD
    logits = model(src, tgt[:, :-1]).logits
    F.cross_entropy(logits.reshape(-1, 40), tgt[:, 1:].reshape(-1), ignore_index=PAD).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert p.grad.abs().max() > 0, f"{name} got a zero gradient"


# -- 8. config and weights I/O --------------------------------------------------------------


def test_config_json_round_trip_and_validation() -> None:
    cfg = tiny_config(positions="learned", norm_first=False, activation="gelu", tie_output=False)
    assert ModelConfig.from_json(cfg.to_json()) == cfg
    assert ModelConfig.from_json(ModelConfig().to_json()) == ModelConfig()
    with pytest.raises(ValueError, match="bogus"):
        ModelConfig.from_dict({**cfg.to_dict(), "bogus": 1})
    with pytest.raises(ValueError, match="bogus"):
        ModelConfig.from_json('{"d_model": 32, "n_heads": 4, "bogus": true}')
    with pytest.raises(ValueError, match="divisible"):
        ModelConfig(d_model=30, n_heads=4)
    with pytest.raises(ValueError):
        ModelConfig(activation="tanh")
    with pytest.raises(ValueError):
        ModelConfig(positions="rotary")


@pytest.mark.parametrize(
    "overrides", [dict(), dict(positions="learned", tie_output=False)], ids=["tied", "learned_untied"]
)
def test_save_and_load_weights_round_trip(tmp_path, overrides: dict) -> None:
    model = tiny_model(seed=0, **overrides)
    path = tmp_path / "model.safetensors"
    save_model(model, path)
    other = tiny_model(seed=1, **overrides)
    src, tgt = random_ids([6, 4], 6), random_tgt(2, 5)
    with torch.no_grad():
        assert not torch.equal(other(src, tgt).logits, model(src, tgt).logits)
        load_weights(other, path)
        assert torch.equal(other(src, tgt).logits, model(src, tgt).logits)
    if other.config.tie_output:
        assert other.output.weight is other.embed.tokens.weight


@pytest.mark.parametrize(
    "overrides",
    [dict(d_model=64), dict(decoder_layers=3), dict(tie_output=False), dict(positions="learned"), dict(vocab_size=41)],
    ids=["d_model", "layers", "tie", "positions", "vocab"],
)
def test_load_weights_with_mismatched_config_raises(tmp_path, overrides: dict) -> None:
    path = tmp_path / "model.safetensors"
    save_model(tiny_model(), path)
    wrong = tiny_model(**overrides)
    before = {k: v.clone() for k, v in wrong.state_dict().items()}
    with pytest.raises(ValueError) as info:
        load_weights(wrong, path)
    message = str(info.value)
    assert message and "\n" not in message
    assert all(torch.equal(v, before[k]) for k, v in wrong.state_dict().items())  # untouched


# -- 9. cross-attention learns to reverse a sequence ------------------------------------------

N_SYMBOLS, MIN_LEN, MAX_LEN = 20, 3, 8
REV_VOCAB = 4 + N_SYMBOLS  # pad0 unk1 bos2 eos3, then the symbols


def reversal_batch(g: torch.Generator, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """src = s_0 .. s_{k-1} EOS PAD..; tgt_out = s_{k-1} .. s_0 EOS PAD..; tgt_in = BOS + tgt_out[:-1]."""
    lengths = torch.randint(MIN_LEN, MAX_LEN + 1, (n,), generator=g)
    symbols = torch.randint(4, REV_VOCAB, (n, MAX_LEN), generator=g)
    j = torch.arange(MAX_LEN + 1)[None]
    k = lengths[:, None]
    fill = torch.where(j == k, EOS, PAD)
    src = torch.where(j < k, symbols.gather(1, j.clamp(max=MAX_LEN - 1).expand(n, -1)), fill)
    tgt_out = torch.where(j < k, symbols.gather(1, (k - 1 - j).clamp(0, MAX_LEN - 1)), fill)
    tgt_in = torch.cat([torch.full((n, 1), BOS), tgt_out[:, :-1]], 1).masked_fill(j == k + 1, PAD)
    return src, tgt_in, tgt_out, lengths


def test_reversal_task_learns_anti_diagonal_cross_attention() -> None:
    """Reversal can only be solved by reading source position k-1-i for target position i,
    so a model that learns it must do so through cross-attention, and the attention must
    show the anti-diagonal."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: one thread is as fast and immune to oversubscription
    try:
        torch.manual_seed(0)
        cfg = ModelConfig(
            vocab_size=REV_VOCAB, d_model=64, n_heads=4, d_ff=128, encoder_layers=2, decoder_layers=2,
            dropout=0.0, max_positions=16,
        )
        model = Seq2SeqTransformer(cfg)

        held_out = reversal_batch(torch.Generator().manual_seed(1234), 200)
        test_src, _, test_out, test_len = held_out
        held_set = {tuple(row.tolist()) for row in test_src}

        steps, warmup, peak_lr = 500, 100, 5e-3
        opt = torch.optim.AdamW(model.parameters(), lr=peak_lr, betas=(0.9, 0.98), weight_decay=0.01)
        # linear warmup, then linear decay: the decay is what takes exact match from ~96% to 100%
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: min((s + 1) / warmup, max(0.02, (steps - s) / (steps - warmup)))
        )
        g = torch.Generator().manual_seed(0)
        model.train()
        # CPU seconds of this single-threaded process: the cost of the task, not how busy the machine is
        start = time.process_time()
        for _ in range(steps):
            src, tgt_in, tgt_out, _ = reversal_batch(g, 64)
            fresh = torch.tensor([tuple(r.tolist()) not in held_set for r in src])  # keep held-out unseen
            src, tgt_in, tgt_out = src[fresh], tgt_in[fresh], tgt_out[fresh]
            logits = model(src, tgt_in).logits
            loss = F.cross_entropy(logits.reshape(-1, REV_VOCAB), tgt_out.reshape(-1), ignore_index=PAD)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        train_seconds = time.process_time() - start
        print(f"reversal: {steps} steps in {train_seconds:.1f} CPU s, final loss {loss.item():.4f}")

        # greedy decoding with the incremental decoder, keeping the cross-attention
        model.eval()
        n = test_src.size(0)
        with torch.no_grad():
            memory, src_pad = model.encode(test_src)
            state = model.start_decoding(memory, src_pad, beam_size=1)
            tokens = torch.full((n, 1), BOS)
            predicted, last_layer_attention = [], []
            done = torch.zeros(n, dtype=torch.bool)
            for _ in range(MAX_LEN + 1):
                logits, weights = model.decode_step(tokens, state, need_weights=True)
                tokens = logits.argmax(-1, keepdim=True)
                predicted.append(tokens)
                last_layer_attention.append(weights[-1][:, :, 0].mean(1))  # (n, src_len)
                done |= tokens[:, 0].eq(EOS)
                if done.all():
                    break
        predicted = torch.cat(predicted, 1)
        attention = torch.stack(last_layer_attention, 1)  # (n, steps, src_len)

        exact = sum(
            predicted.size(1) > k and torch.equal(predicted[r, : k + 1], test_out[r, : k + 1])
            for r, k in enumerate(test_len.tolist())
        )
        assert exact / n >= 0.99, f"exact match {exact}/{n}"

        # Alignment rule (fixed, not best-of): the LAST decoder layer, averaged over heads.
        # Its cross-attention output is what the output projection reads, so the symbol to
        # copy must be fetched there; the first layer's cross-attention is free to look at
        # anything (e.g. EOS to learn the length) and measured 40-97% over seeds, while the
        # last layer measured >= 99% on every seed tried.
        # Step i (query position i) predicts target token i = source token k-1-i.
        hits = total = 0
        for r, k in enumerate(test_len.tolist()):
            steps_here = min(k, attention.size(1))
            i = torch.arange(steps_here)
            hits += int(attention[r, i].argmax(-1).eq(k - 1 - i).sum())
            total += k
        print(f"reversal: exact match {exact}/{n}, anti-diagonal alignment {hits}/{total}")
        assert hits / total >= 0.90, f"alignment {hits}/{total}"
    finally:
        torch.set_num_threads(threads)
