#!/usr/bin/env bash
# On the GPU host, in a folder made by bench/device/publish.sh src/Runner (with --corpus FILE; without one, `prepare`
# downloads the shards, or offline takes the embedded sample):
#   bash parity-run.sh [--fresh-optimizer] [train-seconds]
# The training-step parity at the baseline shape: a checkpoint and its optimizer state from a short `train --save
# --save-optimizer` (default 20 s), three rows of 2,049 random tokens, `parity --train-steps 3 --progress-step 0.25
# --optimizer-state` (the steps continue the run's optimizer, their schedules at progress 0, 0.25 and 0.5; with
# --fresh-optimizer they start a new optimizer, as before the state was saved) on the CPU (Precision=reference) and on the GPU in both precisions, each GPU run compared with the CPU's per
# tensor, and the GPU's own noise floor: a run perturbed by 1e-6 against the unperturbed one (docs/precision.md). Needs
# python3 for the random rows. Logs and outputs under $LOGS (default ./logs); the comparisons' summaries here.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
logs=${LOGS:-$PWD/logs}; mkdir -p "$logs"
state=yes
if [ "${1:-}" = --fresh-optimizer ]; then state=no; shift; fi
seconds=${1:-20}
run() { bash "$here/run.sh" AutoResearch.Runner "$@"; }
corpus=${CORPUS:-$(ls "$here"/corpus.txt.xz "$here"/corpus.txt 2>/dev/null | head -1)}
if [ -n "$corpus" ]; then run prepare --from "$corpus" > "$logs/prepare.log" 2>&1; else run prepare > "$logs/prepare.log" 2>&1; fi \
  || { tail -5 "$logs/prepare.log"; exit 1; }
run train --time-budget "$seconds" --save "$logs/ck.safetensors" --save-optimizer "$logs/ck.optimizer.safetensors" > "$logs/train-ck.log" 2>&1 \
  || { tail -20 "$logs/train-ck.log"; exit 1; }
grep -E "^(val_bpb|num_steps):" "$logs/train-ck.log"
python3 -c "import random, struct, sys; r = random.Random(7); sys.stdout.buffer.write(b''.join(struct.pack('<i', r.randrange(8192)) for _ in range(3 * 2049)))" \
  > "$logs/tokens.bin" || exit 1
common=(--checkpoint "$logs/ck.safetensors" --tokens "$logs/tokens.bin" --train-steps 3 --progress-step 0.25)
if [ $state = yes ]; then common+=(--optimizer-state "$logs/ck.optimizer.safetensors"); fi
start=$(date +%s)
run parity "${common[@]}" --device cpu --set Precision=reference --out "$logs/cpu.safetensors" > "$logs/parity-cpu.log" 2>&1 \
  || { tail -5 "$logs/parity-cpu.log"; exit 1; }
echo "cpu: $(head -1 "$logs/parity-cpu.log") ($(( $(date +%s) - start )) s)"
for precision in reference fp32; do
  run parity "${common[@]}" --set Precision=$precision --out "$logs/gpu-$precision.safetensors" --against "$logs/cpu.safetensors" \
    > "$logs/parity-gpu-$precision.log" 2>&1
  echo "gpu $precision: $(head -1 "$logs/parity-gpu-$precision.log")"
  grep -E "<-- off|tensors agree" "$logs/parity-gpu-$precision.log"
done
run parity "${common[@]}" --set Precision=reference --perturb 1e-6 --out "$logs/gpu-perturbed.safetensors" --against "$logs/gpu-reference.safetensors" \
  > "$logs/parity-gpu-noise.log" 2>&1
echo "gpu noise floor (perturbed 1e-6 against unperturbed):"
grep -E "<-- off|tensors agree|wte|c_v|ve_gate" "$logs/parity-gpu-noise.log"
