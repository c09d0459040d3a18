"""Guided alignment: word links -> piece links, the loss, and a training run that learns them."""

from __future__ import annotations

import json
import math

import pytest
import torch

from conftest import make_pairs, run_cli
from crossattn.guided import aligner_words, guided_loss, piece_links, read_linked_pairs, word_spans


def test_words_are_the_aligners_words():
    text = "L'homme n'a pas vu « Paris », dit-il."
    words = [text[a:b] for a, b in word_spans(text)]
    assert words == ["L'", "homme", "n'", "a", "pas", "vu", "«", "Paris", "»", ",", "dit", "-", "il", "."]
    assert aligner_words(text).split() == [w.lower() for w in words]
    assert aligner_words("It’s") == "it' s"


def test_piece_links_spread_over_the_linked_words_pieces():
    # "ab cd" -> pieces "ab" | "c" "d"; "xy" -> "x" "y"; link cd-xy (1-0), nothing for "ab"
    src_pieces = [(10, 0, 2), (11, 3, 4), (12, 4, 5)]
    tgt_pieces = [(20, 0, 1), (21, 1, 2)]
    pl = piece_links(src_pieces, tgt_pieces, "ab cd", "xy", [(1, 0)])
    assert list(zip(pl.tgt, pl.src, pl.weight)) == [(0, 1, 0.5), (0, 2, 0.5), (1, 1, 0.5), (1, 2, 0.5)]
    assert piece_links(src_pieces, tgt_pieces, "ab cd", "xy", [(2, 0)]) is None  # no third source word


def test_guided_loss_is_the_cross_entropy_of_the_links():
    weights = torch.tensor([[[0.5, 0.25, 0.25], [0.1, 0.8, 0.1]]])  # (1 sentence, 2 target, 3 source)
    pl = piece_links([(1, 0, 1), (2, 2, 3), (3, 4, 5)], [(4, 0, 1), (5, 2, 3)], "a b c", "x y", [(0, 0), (1, 1), (2, 1)])
    loss, covered = guided_loss(weights, [pl])
    assert covered == 2
    assert loss.item() == pytest.approx(-(math.log(0.5) + 0.5 * math.log(0.8) + 0.5 * math.log(0.1)))
    assert guided_loss(weights, [None])[1] == 0


def test_linked_pairs_file_errors_name_the_line(tmp_path):
    from crossattn.errors import CrossattnError

    good = tmp_path / "ok.tsv"
    good.write_text("a b\tx y\t0-0 1-1\n", encoding="utf-8")
    assert read_linked_pairs(good) == [("a b", "x y", [(0, 0), (1, 1)])]
    bad = tmp_path / "bad.tsv"
    bad.write_text("a b\tx y\t0-0 1-1\na\tb\t0:0\n", encoding="utf-8")
    with pytest.raises(CrossattnError, match=r"bad.tsv:2: bad link '0:0'"):
        read_linked_pairs(bad)
    (tmp_path / "two.tsv").write_text("a\tb\n", encoding="utf-8")
    with pytest.raises(CrossattnError, match=r"two.tsv:1: expected source<TAB>target<TAB>links"):
        read_linked_pairs(tmp_path / "two.tsv")


def test_training_with_guided_alignment_teaches_one_head_the_links(synth_data, tmp_path):
    """Word-for-word pairs linked i-i: the guided head's loss is finite, falls, and the head
    ends up looking where the links say, far more than the same head trained without links."""
    guided = tmp_path / "guided.tsv"
    rows = make_pairs(1500, seed=7)
    guided.write_text("".join(f"{s}\t{t}\t{' '.join(f'{i}-{i}' for i in range(len(s.split())))}\n" for s, t in rows),
                      encoding="utf-8")
    config = tmp_path / "guided.toml"
    config.write_text('preset = "tiny"\n[train]\nguided_alignment = 1.0\nlog_every = 10\n', encoding="utf-8")

    def train(out, config_args):
        proc = run_cli(["train", "--train", synth_data.train, "--guided", guided, "--valid", synth_data.dev,
                        "--out", out, *config_args, "--max-steps", "150", "--eval-every", "150",
                        "--max-tokens", "512", "--device", "cpu", "--dtype", "fp32"])
        assert proc.returncode == 0, proc.stderr[-2000:]
        return proc

    proc = train(tmp_path / "run", ["--config", config])
    assert "guided: 1,500 pairs" in proc.stderr
    losses = [r["guided_loss"] for r in map(json.loads, (tmp_path / "run" / "metrics.jsonl").read_text().splitlines())
              if "guided_loss" in r]
    assert losses and all(math.isfinite(x) for x in losses)
    assert losses[-1] < 0.7 * losses[0]
    plain = train(tmp_path / "plain", ["--preset", "tiny"])
    assert "guided_alignment is 0" in plain.stderr

    from crossattn.data import collate
    from crossattn.modeldir import load_model_dir

    def mass_on_links(run):
        model, tokenizer, _ = load_model_dir(run / "model")
        model.eval()
        mass = []
        for s, t in make_pairs(30, seed=11):
            sp, tp = tokenizer.encode_with_spans(s), tokenizer.encode_with_spans(t)
            pl = piece_links(sp, tp, s, t, [(i, i) for i in range(len(s.split()))])
            src, tgt_in, _ = collate([[p for p, _, _ in sp]], [[p for p, _, _ in tp]])
            with torch.no_grad():
                head = model(src, tgt_in, need_weights=(0,)).cross_attention[0][0, 0]
            mass.append(float(head[pl.tgt, pl.src].sum()) / len(set(pl.tgt)))  # per linked target piece
        return sum(mass) / len(mass)

    guided_mass, plain_mass = mass_on_links(tmp_path / "run"), mass_on_links(tmp_path / "plain")
    assert guided_mass > 0.6 and guided_mass > plain_mass + 0.2, (guided_mass, plain_mass)
