#!/usr/bin/env bash
# One prepared GPU run: English->French and French->English side by side on one GPU, from
# scratch, one shared 16k vocabulary, ~8.5 minutes of training each (configs/general-gpu.toml,
# data packed by scripts/pack_gpu_data.py into $DATA). Writes both shipped model
# directories, logs and curves to $OUT, the models as 15 MB tar parts.
# Try it on the CPU first (small batches: the GPU batch of 32k tokens needs ~10 GB of RAM on a CPU):
#   python scripts/pack_gpu_data.py /tmp/gpudata --scale 0.005
#   DATA=/tmp/gpudata MINUTES=0.5 MAX_STEPS=3 MAX_TOKENS=1000 DEVICE=cpu scripts/train_general_gpu.sh
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
for f in "$DATA"/*.tsv.xz; do train+=(--train "$f"); done
# one joint tokenizer for both directions, trained once
$PY - "$WORK/en-fr/tokenizer.model" "${train[@]}" <<'PY'
import sys, tomllib
from crossattn.data import load_corpus
from crossattn.tokenizer import Tokenizer
out, files = sys.argv[1], sys.argv[3::2]  # argv: out --train F --train F ...
pairs, _ = load_corpus(files)
size = tomllib.load(open("configs/general-gpu.toml", "rb"))["train"]["vocab_size"]
Tokenizer.train([s for s, _ in pairs] + [t for _, t in pairs], out, size)
PY
cp "$WORK/en-fr/tokenizer.model" "$WORK/fr-en/tokenizer.model"
common=(--config configs/general-gpu.toml --valid "$DATA/devmix.tsv" --max-minutes "$MINUTES" --device "$DEVICE"
        ${MAX_STEPS:+--max-steps "$MAX_STEPS"} ${MAX_TOKENS:+--max-tokens "$MAX_TOKENS"} ${EVAL_EVERY:+--eval-every "$EVAL_EVERY"})
$PY -m crossattn train "${common[@]}" --out "$WORK/en-fr" "${train[@]}" > "$WORK/en-fr.log" 2>&1 &
a=$!
$PY -m crossattn train "${common[@]}" --reverse --out "$WORK/fr-en" "${train[@]}" > "$WORK/fr-en.log" 2>&1 &
b=$!
wait $a || echo "en-fr failed" >&2
wait $b || echo "fr-en failed" >&2
tail -n 3 "$WORK/en-fr.log" "$WORK/fr-en.log" >&2
for d in en-fr fr-en; do
  $PY scripts/ship_model.py "$WORK/$d/model" "$WORK/ship/$d" --beam 2 --alpha 0.6 --note "scripts/train_general_gpu.sh"
done
tar -C "$WORK" -czf "$OUT/logs.tgz" en-fr.log fr-en.log en-fr/metrics.jsonl fr-en/metrics.jsonl en-fr/run.json fr-en/run.json
tar -C "$WORK/ship" -cf - . | split -b 15m - "$OUT/ship.tar.part-"
ls -la "$OUT"
