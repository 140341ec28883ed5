#!/usr/bin/env bash
# On the GPU machine (device tool, carry .device): the flash kernels' resource report (registers, spills, shared memory),
# the attention GPU tests, then `profile` of the baseline micro-step. Full logs under $OUT.
# Usage: bash bench/device/attention-check.sh [extra test filter args...]
set -uo pipefail
out=${OUT:-/tmp/out}; mkdir -p "$out"
nvcc=/usr/local/cuda/bin/nvcc
for f in flash_forward flash_backward; do
  $nvcc -cubin -o /tmp/$f.cubin -gencode=arch=compute_90a,code=sm_90a -std=c++17 -Ikernels -Xptxas -v kernels/$f.cu 2>&1 \
    | grep -E "Compiling|registers|spill|error" | sed "s/^/[$f] /"
done
bash .device/run.sh AutoResearch.Model.Tests -class '*AttentionTests' -class '*FlashForwardTests' "$@" 2>&1 | tee "$out/tests.log" | grep -vE "^\s*$" | tail -25
bash .device/run.sh AutoResearch.Runner profile 2>&1 | tee "$out/profile.log" | tail -60
