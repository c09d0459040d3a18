#!/usr/bin/env bash
# The one prepared GPU run: English->French and French->English side by side on one GPU, from
# scratch, one shared 16k vocabulary, ~8.5 minutes of training each (configs/general-gpu.toml:
# general text, interface and help strings, guided alignment on one head). It runs on the device
# machine; everything before and after it runs here, on the CPU.
#
# The device tool's rules (.library/device/README.md, H200.md, KINDS.md, read 2026-12-03):
# - 15 minutes of device time per task, all calls together, counted from asking for a machine
#   until it is given back (start, idle and close included); no machine starts with < 4 left.
#   One command runs at most 10 minutes (timeout_s <= 600); the machine stays warm 30 s after.
# - What travels: tracked files + untracked files git does not ignore + `carry` paths (at most
#   8), 64 MiB together. The shipped weights are 83 MB of tracked files: stash them first.
# - What comes back: at most 8 files of $OUT, 16 MiB each, 64 MiB together, names of letters,
#   digits, '.', '_', '-', at most two folders down. $OUT is emptied before each command.
# - The machine: one H200, 16 cores, python3 = 3.12 with torch 2.11 (CUDA), sentencepiece,
#   safetensors, sacrebleu, tqdm, matplotlib; no ctranslate2 (not needed there), no network.
#   PYTHONUNBUFFERED=1, or the output tail comes back empty.
#
# The steps, with what each took in the CPU dry run (`make gpu-dry-run`: scale 0.005, 3 steps,
# dev sets cut to 10 lines; 2-core AMD EPYC AVX2, 2026-12-03): 5 min 20 s in all on the idle
# machine at 15:28 UTC (pack 2 min, train + return 1 min, after 2 min 16 s); 18 min at 14:29
# with a load average of ~9 from other jobs, whose step times are the ones below.
#  1. here:   python scripts/pack_gpu_data.py .gpu/data          dry run 3.5 min; the full pack
#             (eflomal on 200k pairs, 23 min of it) took 36 min, 31.4 MiB: check then sends 34.5
#             MiB and expects ~46 MiB back.
#  2. here:   python scripts/gpu_run.py stash && python scripts/gpu_run.py check      seconds
#  3. device: run(command="OUT=$OUT bash scripts/train_general_gpu.sh", carry=[".gpu/data"],
#             timeout_s=600): tokenizer + 8.5 min of training + pack-return (int8 parts: 42.6 MiB
#             in the dry run, whose vocabulary shrank to 11.9k; 16k: ~47 MiB). Dry run on the
#             CPU: 4.5 min. MINUTES=8 if the machine's start ate into the 15 minutes.
#  4. here:   python scripts/gpu_run.py unstash
#  5. here:   python scripts/gpu_run.py after /work/.device/<files_at> --ship      dry run 7.5 min:
#             unpack 17 s; per direction ship_model 7-36 s, scoring new + shipped on 5 dev sets
#             35-43 s (10 lines each; the full 4 dev sets took the shipped en-fr 265 s on one
#             thread, bench/results/quality-en-fr.json: ~9 min a direction for new + shipped),
#             guided-head AER 28-34 s; alignment heads 45-51 s for 20 steps (2,000 steps took
#             12 min in bf16 on an AMX Xeon, ~60 min in fp32, 2026-12-02/03), heads' AER 41 s.
#             The int8 return itself, measured on shipped en-fr (gpu_run.py roundtrip, 500 lines of
#             each dev set): BLEU 49.53/60.36/9.75/22.60 -> 49.50/60.13/9.57/22.80 (tatoeba,
#             multi30k, newstest2012, hansard), chrF within 0.1: noise-sized, one call instead of two.
# The CPU dry run is `make gpu-dry-run` (small batches: the GPU batch of 32k tokens needs ~10 GB
# of RAM on a CPU); tests/test_gpu_run.py runs this script on a synthetic pack.
set -euo pipefail
DATA=${DATA:-.gpu/data}
WORK=${WORK:-/tmp/general}
OUT=${OUT:-runs/gpu-out}
PY=${PY:-python3}
MINUTES=${MINUTES:-8.5}
DEVICE=${DEVICE:-auto}
mkdir -p "$WORK/en-fr" "$WORK/fr-en" "$OUT"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
train=()
for f in "$DATA"/*.tsv.xz; do [ "$(basename "$f")" = guided.tsv.xz ] || train+=(--train "$f"); done
guided=(--guided "$DATA/guided.tsv.xz")
# one joint tokenizer for both directions, trained once (guided pairs included)
$PY - "$WORK/en-fr/tokenizer.model" "$DATA/guided.tsv.xz" "${train[@]}" <<'PY'
import sys, tomllib
from crossattn.data import load_corpus
from crossattn.guided import read_linked_pairs
from crossattn.tokenizer import Tokenizer
out, guided, files = sys.argv[1], sys.argv[2], sys.argv[4::2]  # argv: out guided --train F --train F ...
pairs, _ = load_corpus(files)
pairs += [(s, t) for s, t, _ in read_linked_pairs(guided)]
size = tomllib.load(open("configs/general-gpu.toml", "rb"))["train"]["vocab_size"]
Tokenizer.train([s for s, _ in pairs] + [t for _, t in pairs], out, size)
PY
cp "$WORK/en-fr/tokenizer.model" "$WORK/fr-en/tokenizer.model"
common=(--config configs/general-gpu.toml --valid "$DATA/devmix.tsv" --max-minutes "$MINUTES" --device "$DEVICE"
        ${MAX_STEPS:+--max-steps "$MAX_STEPS"} ${MAX_TOKENS:+--max-tokens "$MAX_TOKENS"} ${EVAL_EVERY:+--eval-every "$EVAL_EVERY"}
        ${EVAL_SENTENCES:+--eval-sentences "$EVAL_SENTENCES"})
$PY -m crossattn train "${common[@]}" --out "$WORK/en-fr" "${train[@]}" "${guided[@]}" > "$WORK/en-fr.log" 2>&1 &
a=$!
$PY -m crossattn train "${common[@]}" --reverse --out "$WORK/fr-en" "${train[@]}" "${guided[@]}" > "$WORK/fr-en.log" 2>&1 &
b=$!
wait $a || echo "en-fr failed" >&2
wait $b || echo "fr-en failed" >&2
tail -n 3 "$WORK/en-fr.log" "$WORK/fr-en.log" >&2
# both best models as int8 parts (<= 15 MiB each) + logs.tgz: what the device tool brings back
$PY scripts/gpu_run.py pack-return "$WORK" "$OUT"
ls -la "$OUT"
