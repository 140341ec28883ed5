#!/usr/bin/env bash
# On the GPU host, in a folder made by bench/device/publish.sh with src/Runner and the named test projects:
#   bash gpu-check.sh [--ncu] TestProject...
# runs each test project (summary lines here, full logs under $LOGS, default ./logs), then `profile` of the baseline
# micro-step, and with --ncu an Nsight Compute report (speed of light, occupancy, warp states, memory) of one launch of each
# flash attention kernel.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
logs=${LOGS:-$PWD/logs}; mkdir -p "$logs"
ncu=no
if [ "${1:-}" = "--ncu" ]; then ncu=yes; shift; fi
for t in "$@"; do
  bash "$here/run.sh" "$t" > "$logs/$t.log" 2>&1
  grep -E "\[FAIL\]|Total:" "$logs/$t.log" | head -20
done
bash "$here/run.sh" AutoResearch.Runner profile 2>&1 | tee "$logs/profile.log" | tail -32
if [ $ncu = yes ]; then
  n=$(command -v ncu || ls /usr/local/cuda/bin/ncu 2>/dev/null)
  for k in flash_attention_forward flash_attention_backward; do
    $n -k "regex:^$k\$" -c 1 --section SpeedOfLight --section Occupancy --section WarpStateStats --section SchedulerStats \
      --section MemoryWorkloadAnalysis --section ComputeWorkloadAnalysis \
      bash "$here/run.sh" AutoResearch.Runner profile --device-batch 16 --steps 1 > "$logs/ncu-$k.txt" 2>&1
    grep -E "Duration|Throughput|Registers|Achieved Occupancy|Theoretical Occupancy|Block Limit|Stall|Issued Ipc|Bank|L1/TEX Hit|L2 Hit|Warp Cycles Per Issued" "$logs/ncu-$k.txt" | head -40
  done
fi
