"""The rules around CTranslate2 that issue 28 asked for: how many CPU threads to translate
with (measured once per machine and model, cached), and the repetition guard that keeps
very short inputs from looping ("John" -> "John John John"); and the cap on the cache of
conversions."""

from __future__ import annotations

import json
import os
import time

import pytest

from crossattn import translator as tr_module
from crossattn.cli import build_parser
from crossattn.cli_common import load_translator
from crossattn.precision import PrecisionError
from crossattn.translator import (RECENT_USE_S, STALE_TMP_S, THREADS_MIN_SPEEDUP, choose_threads, ctranslate2_model,
                                  measured_threads, plausible, prune_conversions, repeated_unit, thread_candidates)


# -- threads ------------------------------------------------------------------------------
def QUIET() -> float:  # the load average the cache tests run at: a quiet machine
    return 0.0


def test_thread_candidates_double_up_to_the_usable_cpus():
    assert thread_candidates(1) == [1]
    assert thread_candidates(2) == [1, 2]
    assert thread_candidates(6) == [1, 2, 4, 6]
    assert thread_candidates(16) == [1, 2, 4, 8, 16]


@pytest.mark.parametrize("seconds, expected", [
    ({1: 1.0, 2: 1.3}, 1),  # the 2-vCPU machine of 2026-12-03: a second thread slows beam search down
    ({1: 1.0, 2: 0.95}, 1),  # a near tie is not worth a second core
    ({1: 1.0, 2: 0.6}, 2),
    ({1: 1.0, 2: 0.6, 4: 0.55}, 2),  # each step up must pay for itself against the count chosen so far
    ({1: 1.0, 2: 0.6, 4: 0.55, 8: 0.3}, 8),
    ({1: 1.0, 2: 0.6, 4: 0.4}, 4),
])
def test_choose_threads_takes_more_threads_only_when_clearly_faster(seconds, expected):
    assert choose_threads(seconds) == expected


def test_choose_threads_threshold_is_the_documented_speedup():
    assert choose_threads({1: THREADS_MIN_SPEEDUP, 2: 1.0}) == 2
    assert choose_threads({1: THREADS_MIN_SPEEDUP * 0.99, 2: 1.0}) == 1


def test_measured_threads_probes_once_then_reads_the_cache(tmp_path):
    calls = []

    def probe(counts):
        calls.append(counts)
        return {1: 1.0, 2: 0.5}

    cache = tmp_path / "threads.json"
    assert measured_threads("cpu A|model", probe, cpus=2, cache=cache, load=QUIET) == 2
    assert measured_threads("cpu A|model", probe, cpus=2, cache=cache, load=QUIET) == 2
    assert calls == [[1, 2]]
    entry = json.loads(cache.read_text())["cpu A|model|cpus 2"]
    assert entry["threads"] == 2 and entry["time_vs_1_thread"] == {"1": 1.0, "2": 0.5}
    # another machine or model is measured on its own, and the first entry is kept
    assert measured_threads("cpu B|model", lambda counts: {1: 1.0, 2: 1.2}, cpus=2, cache=cache,
                            load=QUIET) == 1
    assert set(json.loads(cache.read_text())) == {"cpu A|model|cpus 2", "cpu B|model|cpus 2"}


def test_an_impossible_speedup_is_used_once_but_never_cached(tmp_path):
    """2 threads 3.5x faster than 1 (what a loaded machine measured): the 1-thread runs waited
    for a core. The answer serves this start; the next start measures again."""
    assert plausible({1: 1.0, 2: 0.5}) and plausible({1: 1.0, 2: 1.3}) and not plausible({1: 1.0, 2: 0.28})
    assert not plausible({1: 1.0, 2: 0.6, 4: 0.2})
    calls = []

    def probe(counts):
        calls.append(counts)
        return {1: 1.0, 2: 0.28}

    cache = tmp_path / "threads.json"
    assert measured_threads("k", probe, cpus=2, cache=cache, load=QUIET) == 2
    assert not cache.exists()
    measured_threads("k", probe, cpus=2, cache=cache, load=QUIET)
    assert len(calls) == 2


def test_a_probe_on_a_busy_machine_is_used_once_but_never_cached(tmp_path):
    """Every core busy before the probe (load average >= CPUs): its answer serves this start
    and the next start measures again; below that, it is cached with the load it saw."""
    calls = []

    def probe(counts):
        calls.append(counts)
        return {1: 1.0, 2: 1.0}

    cache = tmp_path / "threads.json"
    assert measured_threads("k", probe, cpus=2, cache=cache, load=lambda: 2.0) == 1
    assert not cache.exists()
    assert measured_threads("k", probe, cpus=2, cache=cache, load=lambda: 1.5) == 1
    assert json.loads(cache.read_text())["k|cpus 2"]["load_average"] == 1.5
    measured_threads("k", probe, cpus=2, cache=cache, load=lambda: 9.0)  # cached now: no probe
    assert len(calls) == 2


def test_measured_threads_one_cpu_needs_no_probe(tmp_path):
    def probe(counts):
        raise AssertionError("no probe on one CPU")

    assert measured_threads("k", probe, cpus=1, cache=tmp_path / "threads.json") == 1
    assert not (tmp_path / "threads.json").exists()


def test_measured_threads_survives_a_broken_or_unwritable_cache(tmp_path):
    cache = tmp_path / "threads.json"
    cache.write_text("{not json")
    assert measured_threads("k", lambda counts: {1: 1.0, 2: 0.5}, cpus=2, cache=cache, load=QUIET) == 2
    assert json.loads(cache.read_text())["k|cpus 2"]["threads"] == 2  # rewritten whole
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    assert measured_threads("k", lambda counts: {1: 1.0, 2: 1.0}, cpus=2, cache=blocked / "threads.json",
                            load=QUIET) == 1


def test_translate_and_evaluate_take_threads(monkeypatch):
    seen = {}
    monkeypatch.setattr(tr_module.Translator, "load", classmethod(lambda cls, *a, **kw: seen.update(kw)))
    for argv in (["translate", "--threads", "2", "Hello"], ["evaluate", "--test", "x.tsv", "--threads", "2"]):
        seen.clear()
        load_translator(build_parser(extensions=False).parse_args(argv))
        assert seen["threads"] == 2
    seen.clear()
    load_translator(build_parser(extensions=False).parse_args(["translate", "Hello"]))
    assert seen["threads"] is None  # the measured rule


@pytest.mark.parametrize("value", ["0", "-1", "two"])
def test_threads_must_be_a_positive_integer(value, capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser(extensions=False).parse_args(["translate", "--threads", value, "Hello"])
    assert exit_info.value.code == 2
    assert "invalid thread count" in capsys.readouterr().err


def test_translator_default_threads_come_from_the_rule(monkeypatch):
    monkeypatch.delenv("CROSSATTN_THREADS", raising=False)
    monkeypatch.setattr(tr_module, "measured_threads", lambda key, probe, **kw: 1)
    assert tr_module.Translator.load(device="cpu", dtype="fp32").threads == 1
    monkeypatch.setenv("CROSSATTN_THREADS", "2")
    assert tr_module.Translator.load(device="cpu", dtype="fp32").threads == 2
    with pytest.raises(PrecisionError):
        tr_module.Translator.load(device="cpu", dtype="fp32", threads=-1)


# -- loops ----------------------------------------------------------------------------------
def test_repeated_unit_finds_runs_of_one_to_four_pieces():
    assert repeated_unit(["▁John", "▁John", "▁John"]) == ("▁John",)
    assert repeated_unit(["▁John", "▁John"]) is None
    assert repeated_unit(["▁de", "▁la", "▁de", "▁la", "▁de", "▁la", "."]) == ("▁de", "▁la")
    assert repeated_unit(["▁Ha", "▁ha", "▁ha"]) == ("▁Ha",)  # letter case aside
    assert repeated_unit("▁a ▁b ▁c ▁d ▁a ▁b ▁c ▁d ▁a ▁b ▁c ▁d".split()) == ("▁a", "▁b", "▁c", "▁d")
    assert repeated_unit("▁Le ▁chat ▁voit ▁le ▁chien .".split()) is None


def test_a_name_alone_no_longer_loops(shipped_translator):
    """Issue 28, defect 7: "John" -> "John John John" (shipped en-fr, beam 2)."""
    out = shipped_translator.translate(["John"])[0]
    assert "john" in out.lower()
    assert repeated_unit(shipped_translator.tokenizer.pieces(out)) is None
    words = out.lower().replace(".", " ").split()
    assert words.count("john") == 1


def test_the_guard_leaves_a_source_that_repeats_itself(shipped_translator):
    """A source with a run of its own may be translated with one."""
    source = shipped_translator.tokenizer.encode("ha ha ha ha")
    assert repeated_unit([shipped_translator.pieces[t] for t in source])
    calls = []
    original = shipped_translator._unloop
    shipped_translator._unloop = lambda *a: calls.append(a) or original(*a)
    try:
        shipped_translator.translate(["ha ha ha ha"])
    finally:
        del shipped_translator._unloop
    assert calls == []


def test_the_guard_touches_only_looping_translations(shipped_translator):
    sentences = ["John", "The cat sleeps on the red chair.", "I am looking for a jewelry store.",
                 "Where is the station?"]
    guarded = shipped_translator.translate(sentences)
    plain = shipped_translator.translate(sentences, repetition_guard=False)
    assert repeated_unit(shipped_translator.tokenizer.pieces(plain[0]))  # the loop of issue 28, unguarded
    for g, p in zip(guarded, plain):
        if not repeated_unit(shipped_translator.tokenizer.pieces(p)):
            assert g == p
        assert not repeated_unit(shipped_translator.tokenizer.pieces(g))


def test_search_queues_the_costliest_length_groups_first(shipped_translator, monkeypatch):
    """Three short sentences of one length outweigh one longer sentence: they are queued
    first, so that the threads end together; each output still goes to its own source."""
    from crossattn.translator import group_cost

    assert group_cost(20, 3) > group_cost(30, 1) > group_cost(20, 1)
    tok = shipped_translator.tokenizer
    short = ["Where is the station?", "Where is the market?", "Where is the bridge?"]
    long = "I am looking for a cheap hotel near the old railway station in the town."
    sources = [tok.encode(s) for s in short + [long]]
    assert len({len(ids) for ids in sources[:3]}) == 1 and len(sources[3]) > len(sources[0])
    alone = [shipped_translator._search([ids], 2, 1.0, 8)[0] for ids in sources]

    engine, batches = shipped_translator.engine, []

    class Recording:
        def __getattr__(self, name):
            return getattr(engine, name)

        def translate_batch(self, batch, **kwargs):
            batches.append(len(batch))
            return engine.translate_batch(batch, **kwargs)

    monkeypatch.setattr(shipped_translator, "engine", Recording())
    assert shipped_translator._search([sources[3]] + sources[:3], 2, 1.0, 8) == [alone[3]] + alone[:3]
    assert batches == [3, 1]


def test_the_probe_times_thread_counts_relative_to_the_first(shipped_translator):
    from crossattn.translator import probe_seconds

    times = probe_seconds(shipped_translator.ct2_dir, "float32", shipped_translator.pieces, [1], rounds=1)
    assert times == {1: 1.0}


# -- the conversion cache -------------------------------------------------------------------
def conversion(folder, name: str, mb: float, hours_ago: float, now: float):
    path = folder / name
    path.mkdir(parents=True)
    (path / "model.bin").write_bytes(b"\0" * int(mb * 2**20))
    os.utime(path, (now - hours_ago * 3600, now - hours_ago * 3600))
    return path


def test_the_least_recently_used_conversions_go_once_the_cache_is_over_its_cap(tmp_path):
    now = time.time()
    names = [f"{k:024x}-float32-ct2-4.8.5" for k in range(5)]
    paths = [conversion(tmp_path, name, 1, hours_ago=2 + k, now=now) for k, name in enumerate(names)]
    recent = conversion(tmp_path, f"{9:024x}-int8-ct2-4.8.5", 1, hours_ago=0.1, now=now)
    stale_tmp = conversion(tmp_path, f".{names[0]}.tmp123-456", 1, hours_ago=STALE_TMP_S / 3600 + 1, now=now)
    fresh_tmp = conversion(tmp_path, f".{names[1]}.tmp789-1", 1, hours_ago=0.1, now=now)
    other = conversion(tmp_path, "notes", 5, hours_ago=100, now=now)  # not a name of the cache's shape
    kept = paths[4]  # the oldest, but the one just converted

    removed = prune_conversions(tmp_path, keep=kept, cap_mb=3.5, now=now)

    # newest first: recent, paths[0], paths[1] fit in 3.5 MB; paths[2], paths[3] go; kept stays
    assert sorted(removed) == sorted([paths[2], paths[3], stale_tmp])
    assert all(p.exists() for p in (recent, paths[0], paths[1], kept, fresh_tmp, other))
    assert not any(p.exists() for p in removed)


def test_a_conversion_used_in_the_last_hour_is_never_removed(tmp_path):
    now = time.time()
    young = [conversion(tmp_path, f"{k:024x}-int8-ct2-4.8.5", 1, hours_ago=RECENT_USE_S / 3600 * 0.5, now=now)
             for k in range(3)]
    assert prune_conversions(tmp_path, cap_mb=0.5, now=now) == []
    assert all(p.exists() for p in young)
    assert prune_conversions(tmp_path, cap_mb=0, now=now + 10 * 86400) == []  # 0: no cap


def test_a_new_conversion_prunes_the_cache_and_a_hit_marks_its_entry_used(tmp_path, monkeypatch, tiny_run):
    from crossattn.errors import ConfigError
    from crossattn.modeldir import read_model_dir

    monkeypatch.setenv("CROSSATTN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CROSSATTN_CONVERSIONS_MB", "1")
    now = time.time()
    old = conversion(tmp_path / "cache" / "ct2", f"{7:024x}-float32-ct2-4.8.5", 1.5, hours_ago=48, now=now)
    root, config, _, _ = read_model_dir(tiny_run.out)
    path = ctranslate2_model(root, config)
    assert path.exists() and not old.exists()  # over the 1 MB cap: the old entry went, the new one stayed
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # nothing half-deleted left
    os.utime(path, (1_000_000, 1_000_000))
    assert ctranslate2_model(root, config) == path
    assert path.stat().st_mtime > time.time() - 60
    monkeypatch.setenv("CROSSATTN_CONVERSIONS_MB", "lots")
    with pytest.raises(ConfigError, match="CROSSATTN_CONVERSIONS_MB"):
        prune_conversions(path.parent)
