"""Translation throughput and latency on real sentences (Tatoeba dev, English -> French).

Systems, all on the same sentences, tokenisation included in the timings:

* ours: crossattn's Translator (CTranslate2 on our converted model, its default compute
  type), ours fp32: the same in float32;
* ours torch / ours torch int8: the PyTorch engine (torch_engine.py: decode.py/model.py),
  fp32 and with dynamic int8 quantization of the Linear layers;
* CT2 fp32 / CT2 int8: CTranslate2 called directly on our model exported by
  ``crossattn export`` (int8 = weights quantized at load time);
* HF Marian: ``MarianMTModel.generate`` of identical size. Marian is post-LN without final
  LayerNorms, so our pre-LN weights cannot be copied in: it has random weights and is forced
  to produce exactly as many tokens as we do (min_new_tokens = max_new_tokens = the longest
  of our outputs in its batch + EOS), i.e. the work HF would do had it found our translations.

Rates are medians over chunks of sentences (contention on a shared machine hits single
chunks, not the median); a chunk is ``chunk`` sentences for batched runs (batch 64,
sorted by length) and for batch size 1 (one call per sentence).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from common import REPO, dev_sentences, median, percentile, print_table
from crossattn.modeldir import normalize
from crossattn.torch_engine import TorchTranslator
from crossattn.translator import Translator

BATCH = 64


class Ours:
    def __init__(self, dtype: str = "auto"):
        self.name = "ours" if dtype == "auto" else f"ours {dtype}"
        self.tr = Translator.load(dtype=dtype, threads=torch.get_num_threads())

    def translate(self, texts: list[str], beam: int, batch_size: int, lengths: list[int]) -> list[str]:
        return self.tr.translate(texts, beam=beam, batch_size=batch_size)


class OursTorch:
    def __init__(self, dtype: str = "fp32"):
        self.name = "ours torch" if dtype == "fp32" else f"ours torch {dtype}"
        self.tr = TorchTranslator.load(device="cpu", dtype=dtype)

    def translate(self, texts: list[str], beam: int, batch_size: int, lengths: list[int]) -> list[str]:
        return self.tr.translate(texts, beam=beam, batch_size=batch_size)


class CT2:
    def __init__(self, model_dir: Path, compute_type: str):
        import ctranslate2
        import sentencepiece as spm

        self.name = f"CT2 {compute_type}"
        threads = torch.get_num_threads()
        self.engine = ctranslate2.Translator(str(model_dir), device="cpu", compute_type=compute_type,
                                             intra_threads=threads)
        self.sp = spm.SentencePieceProcessor(model_file=str(model_dir / "tokenizer.model"))

    def translate(self, texts: list[str], beam: int, batch_size: int, lengths: list[int]) -> list[str]:
        batch = self.sp.encode([normalize(t) for t in texts], out_type=str)
        results = self.engine.translate_batch(batch, beam_size=beam, max_batch_size=batch_size, length_penalty=0.6,
                                              max_decoding_length=255, max_input_length=0)
        return [self.sp.decode(r.hypotheses[0]) for r in results]


class HFMarian:
    name = "HF Marian"

    def __init__(self, tokenizer):
        from training import SIZE, marian
        from crossattn.model import ModelConfig

        self.model = marian(ModelConfig(**SIZE, dropout=0.0, attention_dropout=0.0)).eval()
        self.tok = tokenizer

    @torch.inference_mode()
    def translate(self, texts: list[str], beam: int, batch_size: int, lengths: list[int]) -> list[str]:
        ids = self.tok.encode_batch([normalize(t) for t in texts])
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        out = [""] * len(texts)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            width = max(len(ids[i]) for i in idx) + 1
            src = torch.zeros(len(idx), width, dtype=torch.long)
            for row, i in enumerate(idx):
                src[row, : len(ids[i]) + 1] = torch.tensor(ids[i] + [3])
            steps = max(lengths[i] for i in idx)  # our longest output in this batch, EOS included
            gen = self.model.generate(input_ids=src, attention_mask=src.ne(0), num_beams=beam, do_sample=False,
                                      min_new_tokens=steps, max_new_tokens=steps, decoder_start_token_id=2,
                                      eos_token_id=3, pad_token_id=0)
            for row, i in enumerate(idx):
                out[i] = self.tok.decode(gen[row].tolist())
        return out


def throughput(system, texts: list[str], beam: int, batch_size: int, chunk: int,
               lengths: list[int] | None = None) -> dict:
    """Translate ``texts`` in chunks; per-chunk wall times and all outputs.

    ``lengths`` (our output lengths) only matter to HF, which is forced to produce them.
    """
    lengths = lengths or [60] * len(texts)
    system.translate(texts[:4], beam, batch_size, lengths[:4])  # warm-up
    times, cpu, outputs = [], [], []
    for start in range(0, len(texts), chunk):
        part, plen = texts[start : start + chunk], lengths[start : start + chunk]
        t0, c0 = time.perf_counter(), time.process_time()
        if batch_size == 1:
            for i, text in enumerate(part):
                outputs.extend(system.translate([text], beam, 1, plen[i : i + 1]))
        else:
            outputs.extend(system.translate(part, beam, batch_size, plen))
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return {"times": times, "cpu": cpu, "outputs": outputs, "chunk": chunk}


def rates(run: dict, tokens: list[int]) -> dict:
    """Median over chunks of sentences/s and target tokens/s (EOS counted).

    "cpu sent/s" divides by the CPU time of this process instead of wall time: with one
    compute thread it is what the rate would be on an idle machine (descheduling by
    other users' jobs excluded; their cache and memory traffic is not).
    """
    c, times, cpu = run["chunk"], run["times"], run["cpu"]
    sizes = [min(c, len(tokens) - i * c) for i in range(len(times))]
    toks = [sum(tokens[i * c : (i + 1) * c]) for i in range(len(times))]
    return {"sent/s": median([n / t for n, t in zip(sizes, times)]),
            "tok/s": median([n / t for n, t in zip(toks, times)]),
            "cpu sent/s": median([n / t for n, t in zip(sizes, cpu)]),
            "total s": sum(times)}


def latency(system, texts: list[str], beam: int) -> dict:
    for t in texts[:3]:
        system.translate([t], beam, 1, [60])
    times = []
    for t in texts:
        t0 = time.perf_counter()
        system.translate([t], beam, 1, [60])
        times.append(time.perf_counter() - t0)
    return {"p50 ms": 1e3 * percentile(times, 50), "p99 ms": 1e3 * percentile(times, 99), "n": len(times)}


CT2_ONE_SHOT = """
import sys, ctranslate2, sentencepiece as spm
model_dir, text = sys.argv[1], sys.argv[2]
sp = spm.SentencePieceProcessor(model_file=model_dir + "/tokenizer.model")
tr = ctranslate2.Translator(model_dir, device="cpu", compute_type="int8", intra_threads=1)
r = tr.translate_batch([sp.encode(text, out_type=str)], beam_size=2, length_penalty=0.6)
print(sp.decode(r[0].hypotheses[0]))
"""


def cold_start(repeats: int, ct2_dir: Path | None) -> dict:
    """Fresh processes translating "Hello, how are you?" once: wall time, median of ``repeats``.

    ours = the ``crossattn translate`` command (CTranslate2, cached conversion), CT2 = a
    minimal Python script around CTranslate2 with our exported model (int8). ``import
    torch`` alone is what the torch engine would pay before any work.
    """
    exe = Path(sys.executable).parent / "crossattn"
    text = "Hello, how are you?"
    commands = {
        "ours (crossattn translate)": [str(exe), "translate", text],
        "python -c 'import torch'": [sys.executable, "-c", "import torch"],
    }
    if ct2_dir is not None:
        commands["CT2 fp32 script"] = [sys.executable, "-c", CT2_ONE_SHOT, str(ct2_dir), text]
    result = {}
    for name, command in commands.items():
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            times.append(time.perf_counter() - t0)
        result[name] = median(times)
    return result


def run(quick: bool, sentences: int, single_sentences: int) -> dict:
    from crossattn.export import export_ctranslate2

    n = 64 if quick else sentences
    n1 = 8 if quick else min(single_sentences, n)
    chunk = 32 if quick else 200
    texts = [s for s, _ in dev_sentences(n)]
    ours = Ours()
    tok = ours.tr.tokenizer
    systems = [ours, Ours("fp32"), OursTorch()]
    try:  # dynamic int8 quantization of the Linear layers (dtype="int8"), if this torch has it
        systems.append(OursTorch("int8"))
    except (KeyError, ValueError, RuntimeError) as e:
        print(f"skipping ours torch int8: {e}")
    tmp = Path(tempfile.mkdtemp(prefix="crossattn-bench-"))
    try:
        try:
            ct2_dir = export_ctranslate2(None, tmp / "ct2")
            systems += [CT2(ct2_dir, "float32"), CT2(ct2_dir, "int8")]
        except Exception as e:  # ctranslate2 missing: still benchmark the rest
            ct2_dir = None
            print(f"skipping CTranslate2: {e}")
        try:
            systems.append(HFMarian(tok))
        except ImportError as e:
            print(f"skipping HF Marian: {e}")

        rows, agreement = [], {}
        count = lambda outs: [len(tok.encode(o)) + 1 for o in outs]  # noqa: E731  (EOS included)
        for beam in (1, 4):
            for batch_size in (BATCH, 1):
                m = n if batch_size > 1 else n1
                size = chunk if batch_size > 1 else max(5, m // 5)
                mine = throughput(ours, texts[:m], beam, batch_size, size)
                lengths = count(mine["outputs"])  # drive HF's forced lengths
                for system in systems:
                    r = mine if system is ours else throughput(system, texts[:m], beam, batch_size, size, lengths)
                    tokens = lengths if system is ours or isinstance(system, HFMarian) else count(r["outputs"])
                    if system is not ours and not isinstance(system, HFMarian):
                        agreement[f"{system.name} beam {beam} batch {batch_size}"] = (
                            sum(a == b for a, b in zip(r["outputs"], mine["outputs"])) / m)
                    rows.append({"system": system.name, "beam": beam, "batch": batch_size, "sentences": m,
                                 **rates(r, tokens)})
                    print(".", end="", flush=True)
        print()
        for r in rows:
            mine = next(x for x in rows if x["system"] == "ours" and x["beam"] == r["beam"] and x["batch"] == r["batch"])
            r["ours speedup"] = mine["sent/s"] / r["sent/s"]
            r["ours speedup (cpu)"] = mine["cpu sent/s"] / r["cpu sent/s"]
        print_table(f"Translation throughput, first {n} Tatoeba dev sentences (batch 1: first {n1}), "
                    f"{torch.get_num_threads()} thread(s); speedup > 1 = ours faster",
                    rows, ["system", "beam", "batch", "sentences", "sent/s", "tok/s", "cpu sent/s", "ours speedup",
                          "ours speedup (cpu)"])

        short = [s for s, _ in dev_sentences(2217) if len(s.split()) <= 6][: 8 if quick else 100]
        lat_rows = []
        for system in [s for s in systems if not isinstance(s, HFMarian)]:
            for beam in (1, 4):
                lat_rows.append({"system": system.name, "beam": beam, **latency(system, short, beam)})
        print_table(f"Latency, one short sentence per call (<= 6 words, n={len(short)})", lat_rows,
                    ["system", "beam", "p50 ms", "p99 ms", "n"])
        cold = cold_start(1 if quick else 5, ct2_dir)
        print_table("Cold start: one sentence in a fresh process, wall s (median)",
                    [{"command": k, "s": v} for k, v in cold.items()], ["command", "s"])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"throughput": rows, "latency": lat_rows, "cold_start": cold, "identical_to_ours": agreement,
            "hf_note": "random weights, lengths forced to ours (min_new_tokens = max_new_tokens)",
            "ct2_length_penalty": 0.6}


if __name__ == "__main__":
    import argparse
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path.insert(0, str(REPO / "bench"))
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--sentences", type=int, default=1000)
    ap.add_argument("--single-sentences", type=int, default=200)
    a = ap.parse_args()
    torch.set_num_threads(1)
    run(a.quick, a.sentences, a.single_sentences)
