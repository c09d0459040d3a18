"""An imported Marian model: `crossattn translate`'s engine vs CTranslate2's own Marian converter.

Issue 27's target: on an opus-mt-en-fr-shaped model (d 512, 6+6 layers, 8 heads, swish,
vocabulary 59,514; random weights, as no real checkpoint is reachable here),
crossattn's Translator (our import + our CTranslate2 export) translates at least 0.95x as
fast as CTranslate2 on the model its own converter (TransformersConverter) makes from the
same checkpoint, on the same sources, beam, length penalty and length budget.

Both engines run in this process, one after the other, in alternating rounds; the median
of the rounds is reported, with the output tokens each wrote (the same work only if they
wrote the same tokens). One draw of 16 sentences is one sample of how they fall into
length groups (1.07x on one draw, 0.92x on another, 2026-12-07), so ``--draws`` takes
several draws (seeds 0, 1, ...) and reports each draw's ratio and their median.

    .venv/bin/python bench/marian_speed.py [--rounds 5] [--threads 1] [--sentences 64] [--draws 5] [--dtype int8]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the random checkpoint tests/test_marian.py builds: one definition

from common import machine_info  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--sentences", type=int, default=16)
    ap.add_argument("--draws", type=int, default=1, help="draws of --sentences random sentences (seeds 0, 1, ...)")
    ap.add_argument("--beam", type=int, default=4)
    ap.add_argument("--dtype", choices=("fp32", "int8"), default="fp32",
                    help="both engines' compute type (int8: what `crossattn translate` runs on a CPU by default)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "marian_speed.json"))
    args = ap.parse_args()

    import ctranslate2
    from ctranslate2.converters import TransformersConverter
    from test_marian import EN, write_checkpoint

    from crossattn.decoding import max_output_length
    from crossattn.marian import import_marian
    from crossattn.translator import Translator

    def draw(seed: int) -> list[str]:
        rng = random.Random(seed)
        return [" ".join(rng.choice(EN) for _ in range(rng.randint(6, 16))) for _ in range(args.sentences)]

    results: dict = {"machine": machine_info(args.threads), "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                     "settings": vars(args) | {"model": "opus-mt-en-fr shape, random weights"}, "engines": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ["CROSSATTN_CACHE"] = str(tmp / "cache")  # a random model's conversion is of no use after the run
        log = lambda m: print(f"{time.strftime('%H:%M:%S')} {m}", file=sys.stderr, flush=True)  # noqa: E731
        write_checkpoint(tmp / "opus-mt-en-fr", d_model=512, heads=8, ffn=2048, layers=6, vocab_size=59514)
        log("checkpoint written")
        start = time.perf_counter()
        import_marian(tmp / "opus-mt-en-fr", tmp / "imported")
        results["import_s"] = round(time.perf_counter() - start, 2)
        TransformersConverter(str(tmp / "opus-mt-en-fr")).convert(str(tmp / "ct2-own"))
        log(f"imported in {results['import_s']} s; converted by CTranslate2's converter")

        compute = {"fp32": "float32", "int8": "int8"}[args.dtype]
        ours = Translator(tmp / "imported", device="cpu", dtype=args.dtype, threads=args.threads)
        tok = ours.tokenizer
        own = ctranslate2.Translator(str(tmp / "ct2-own"), device="cpu", compute_type=compute,
                                     intra_threads=args.threads)
        ours_direct = ctranslate2.Translator(str(ours.ct2_dir), device="cpu", compute_type=compute,
                                             intra_threads=args.threads)
        results["draws"] = [timed_draw(args, seed, draw(seed), ours, own, ours_direct, tok, max_output_length, log)
                            for seed in range(args.draws)]
    results["median_speed_vs_own_converter"] = {
        name: round(statistics.median(d["engines"][name]["speed_vs_own_converter"] for d in results["draws"]), 3)
        for name in COMPARED}
    results["finished"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


OWN = "CTranslate2 on its own converter's model"
COMPARED = ("crossattn Translator._search (our export)", "crossattn Translator.translate",
            "CTranslate2 on our export, called as the line above")


def timed_draw(args, seed: int, texts: list[str], ours, own, ours_direct, tok, max_output_length, log) -> dict:
    """Every engine on one draw of sentences, in alternating rounds."""
    sources = [tok.encode(t) for t in texts]
    pieces = [[tok.id_to_piece(i) for i in ids] + ["</s>"] for ids in sources]  # its converter adds no </s>
    budget = max(max_output_length(len(ids) + 1, ours.model_config.max_positions) for ids in sources)
    ours_pieces = [[tok.id_to_piece(i) for i in ids] for ids in sources]  # our export appends </s> itself

    def run_ours_direct():  # our export, called exactly as the other model is: one batch, one budget
        out = ours_direct.translate_batch(ours_pieces, beam_size=args.beam, length_penalty=1.0,
                                          max_decoding_length=budget, max_input_length=0, max_batch_size=64)
        return sum(len(r.hypotheses[0]) for r in out)

    def run_ours():
        hyps = ours._search(sources, args.beam, 1.0, 64, guard=False)
        return sum(len(h) for h in hyps)

    def run_own():
        out = own.translate_batch(pieces, beam_size=args.beam, length_penalty=1.0, max_decoding_length=budget,
                                  max_input_length=0, max_batch_size=64)
        return sum(len(r.hypotheses[0]) for r in out)

    def run_ours_cli_path():  # what `crossattn translate` does around the search
        return sum(len(t) for t in ours.translate(texts, beam=args.beam, alpha=1.0, repetition_guard=False))

    engines = {COMPARED[0]: run_ours, COMPARED[1]: run_ours_cli_path, OWN: run_own, COMPARED[2]: run_ours_direct}
    for fn in engines.values():
        fn()  # warm-up
    times: dict[str, list[float]] = {name: [] for name in engines}
    tokens: dict[str, int] = {}
    for _ in range(args.rounds):
        for name, fn in engines.items():
            start = time.perf_counter()
            tokens[name] = fn()
            times[name].append(time.perf_counter() - start)
            log(f"draw {seed}, {name}: {times[name][-1]:.2f} s")
    result = {"seed": seed, "source_lengths": sorted(len(ids) for ids in sources), "engines": {}}
    for name in engines:
        result["engines"][name] = {"median_s": round(statistics.median(times[name]), 3),
                                   "rounds_s": [round(t, 3) for t in times[name]],
                                   "output (tokens; characters for translate)": tokens[name]}
    own_s = result["engines"][OWN]["median_s"]
    for name in COMPARED:
        result["engines"][name]["speed_vs_own_converter"] = round(own_s / result["engines"][name]["median_s"], 3)
    return result


if __name__ == "__main__":
    main()
