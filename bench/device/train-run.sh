#!/usr/bin/env bash
# On the GPU machine (device tool, carry .device, packed with --corpus and the Runner):
#   bash bench/device/train-run.sh [warm-budget-seconds]
# prepare from the shared corpus, the full baseline `train` (cold kernel cache), then a second short `train` (warm kernel and
# token caches) to measure start-up and evaluation overhead. Logs under $OUT; the summary blocks and progress lines here.
set -uo pipefail
out=${OUT:-/tmp/out}; mkdir -p "$out"
warm=${1:-30}
bash .device/run.sh AutoResearch.Runner prepare --from .device/corpus.txt.xz > "$out/prepare.log" 2>&1 || { tail -20 "$out/prepare.log"; exit 1; }
tail -3 "$out/prepare.log"
bash .device/run.sh AutoResearch.Runner train > "$out/train.log" 2>&1; echo "train exit $?"
tr '\r' '\n' < "$out/train.log" | grep -E "^step" | awk 'NR % 50 == 1' | tail -14
tr '\r' '\n' < "$out/train.log" | grep -vE "^step" | tail -16
bash .device/run.sh AutoResearch.Runner train --time-budget "$warm" > "$out/train-warm.log" 2>&1; echo "warm train exit $?"
tr '\r' '\n' < "$out/train-warm.log" | grep -vE "^step" | tail -13
