#!/usr/bin/env bash
# On the GPU host, in a folder made by bench/device/publish.sh with src/Runner and the named test projects:
#   bash gpu-check.sh [--ncu[=KERNEL,KERNEL...]] TestProject...
# runs each test project (summary lines here, full logs under $LOGS, default ./logs), then `profile --resources` of the baseline
# micro-step, and with --ncu an Nsight Compute report (speed of light, occupancy, warp states, memory) of one launch of each
# kernel named (by default the kernels furthest below their roofline in `profile`: the flash attention forward and backward,
# the GEMMs with fused epilogues (the MLP's two, and q with rotary + QK-norm), the soft-capped cross-entropy and the rotary +
# QK-norm backward).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
logs=${LOGS:-$PWD/logs}; mkdir -p "$logs"
ncu=no
kernels=flash_attention_forward,flash_attention_backward,mlp_fc_relu_square,mlp_proj_input_gradient,qk_gemm_rotary_norm_128,softcap_cross_entropy,rotary_qknorm_backward
case "${1:-}" in
  --ncu) ncu=yes; shift ;;
  --ncu=*) ncu=yes; kernels=${1#--ncu=}; shift ;;
esac
for t in "$@"; do
  bash "$here/run.sh" "$t" > "$logs/$t.log" 2>&1
  grep -E "\[FAIL\]|Total:" "$logs/$t.log" | head -20
done
bash "$here/run.sh" AutoResearch.Runner profile --resources 2>&1 | tee "$logs/profile.log" | tail -90
if [ $ncu = yes ]; then
  n=$(command -v ncu || ls /usr/local/cuda/bin/ncu 2>/dev/null)
  for k in ${kernels//,/ }; do
    $n -k "regex:^$k\$" -c 1 --section SpeedOfLight --section Occupancy --section WarpStateStats --section SchedulerStats \
      --section MemoryWorkloadAnalysis --section ComputeWorkloadAnalysis \
      bash "$here/run.sh" AutoResearch.Runner profile --device-batch 16 --steps 1 > "$logs/ncu-$k.txt" 2>&1
    grep -E "Duration|Throughput|Registers|Achieved Occupancy|Theoretical Occupancy|Block Limit|Stall|Issued Ipc|Bank|L1/TEX Hit|L2 Hit|Warp Cycles Per Issued" "$logs/ncu-$k.txt" | head -40
  done
fi
