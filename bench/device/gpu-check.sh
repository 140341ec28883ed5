#!/usr/bin/env bash
# On the GPU host, in a folder made by bench/device/publish.sh with src/Runner and the named test projects:
#   bash gpu-check.sh [--cold-train] [--ncu[=KERNEL,KERNEL...]] TestProject...
# With --cold-train it first runs `prepare` (the embedded sample) and a 5-second `train` before anything else has compiled a
# kernel, so the overhead line shows a new machine's start-up (NVRTC 12.9 and later also cache compiles themselves). Then it
# runs each test project (summary lines here, full logs under $LOGS, default ./logs), `profile --resources` of the baseline
# micro-step, `profile ARGS` for each line of $PROFILES (e.g. PROFILES=$'--cublas-mlp\n--set Recompute=mlp'), and
# `doctor --compile-timing --skip-gemm`; with --ncu an Nsight Compute report (speed of light, occupancy, warp states, memory,
# and where the warps stall instruction by instruction, through `autoresearch stalls`) of one launch of each kernel named
# (by default the kernels furthest below their roofline in `profile`: the flash attention forward and backward,
# the GEMMs with fused epilogues (the MLP's two, and q with rotary + QK-norm), the soft-capped cross-entropy and the rotary +
# QK-norm backward). $STEP_TIMEOUT (seconds, default none) bounds each test project and profile: a kernel that hangs then
# costs that much, names itself, and the steps after it still run.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=clocks.sh
. "$here/clocks.sh"
logs=${LOGS:-$PWD/logs}; mkdir -p "$logs"
ncu=no
cold=no
kernels=flash_attention_forward,flash_attention_backward,mlp_fc_relu_square,mlp_proj_input_gradient,qk_gemm_rotary_norm_128,softcap_cross_entropy,rotary_qknorm_backward
while [ $# -gt 0 ]; do
  case "$1" in
    --cold-train) cold=yes; shift ;;
    --ncu) ncu=yes; shift ;;
    --ncu=*) ncu=yes; kernels=${1#--ncu=}; shift ;;
    *) break ;;
  esac
done
if [ $cold = yes ]; then
  # An unreachable download address: prepare falls back to the embedded sample at once.
  AUTORESEARCH_DATA_URL=http://127.0.0.1:9/ bash "$here/run.sh" AutoResearch.Runner prepare > "$logs/cold-train.log" 2>&1
  bash "$here/run.sh" AutoResearch.Runner train --time-budget 5 >> "$logs/cold-train.log" 2>&1
  tr '\r' '\n' < "$logs/cold-train.log" | grep -E "^(model|overhead|start-up|val_bpb|total_seconds|peak)" | head -9
fi
for t in "$@"; do
  run_limited bash "$here/run.sh" "$t" > "$logs/$t.log" 2>&1
  [ $? = 124 ] && echo "$t: stopped after ${STEP_TIMEOUT:-?} s (a hang?); the tests it had run are in $logs/$t.log"
  grep -E "\[FAIL\]|Total:" "$logs/$t.log" | head -20
done
clocks_start "$logs/profile-clocks.csv"
run_limited bash "$here/run.sh" AutoResearch.Runner profile --resources 2>&1 | tee "$logs/profile.log" | tail -90
[ "${PIPESTATUS[0]}" = 124 ] && echo "profile: stopped after ${STEP_TIMEOUT:-?} s (a hang?); its log: $logs/profile.log"
clocks_stop
clocks_summary "$logs/profile-clocks.csv"
i=0
while IFS= read -r variant; do
  [ -n "$variant" ] || continue
  i=$((i + 1))
  echo "== profile $variant"
  # shellcheck disable=SC2086 # the variant's words are profile's arguments
  run_limited bash "$here/run.sh" AutoResearch.Runner profile $variant > "$logs/profile-$i.log" 2>&1
  [ $? = 124 ] && echo "profile $variant: stopped after ${STEP_TIMEOUT:-?} s (a hang?)"
  grep -E "^(GEMM|attention|micro-step|whole step|peak)" "$logs/profile-$i.log" | head -24
done <<< "${PROFILES:-}"
bash "$here/run.sh" AutoResearch.Runner doctor --compile-timing --skip-gemm > "$logs/doctor.log" 2>&1
grep -E "^(Cold compile|Longest|mlp_gemm)" "$logs/doctor.log"
if [ $ncu = yes ]; then
  n=$(command -v ncu || ls /usr/local/cuda/bin/ncu 2>/dev/null)
  [ -n "$n" ] || { echo "--ncu: no ncu on PATH or in /usr/local/cuda/bin (Nsight Compute is not installed here)"; exit 1; }
  for k in ${kernels//,/ }; do
    # A report left by an earlier run must not be read as this one's.
    rm -f "$logs/ncu-$k.ncu-rep"
    # --clock-control none: the clocks the runs themselves get (ncu would otherwise lock them to the base clock).
    $n --clock-control none -k "regex:^$k\$" -c 1 --section SpeedOfLight --section Occupancy --section WarpStateStats --section SchedulerStats \
      --section MemoryWorkloadAnalysis --section ComputeWorkloadAnalysis --section SourceCounters -o "$logs/ncu-$k" \
      bash "$here/run.sh" AutoResearch.Runner profile --device-batch 16 --steps 1 > "$logs/ncu-$k.log" 2>&1
    status=$?
    if [ ! -f "$logs/ncu-$k.ncu-rep" ]; then
      echo "ncu $k: no report (exit $status; is the kernel's name right?); the end of $logs/ncu-$k.log:"
      tail -5 "$logs/ncu-$k.log"
      continue
    fi
    $n --import "$logs/ncu-$k.ncu-rep" --page details > "$logs/ncu-$k.txt" 2>&1
    grep -E "Duration|Throughput|Registers|Achieved Occupancy|Theoretical Occupancy|Block Limit|Stall|Issued Ipc|Bank|L1/TEX Hit|L2 Hit|Warp Cycles Per Issued" "$logs/ncu-$k.txt" | head -40
    # Where the warps wait, instruction by instruction (the SASS offsets cuobjdump prints).
    if ! $n --import "$logs/ncu-$k.ncu-rep" --page source --csv --print-source sass > "$logs/ncu-$k-sass.csv" 2> "$logs/ncu-$k-sass.err" \
        || ! bash "$here/run.sh" AutoResearch.Runner stalls "$logs/ncu-$k-sass.csv" --top 15; then
      echo "ncu $k: the source page could not be read; ncu said:"
      tail -5 "$logs/ncu-$k-sass.err"
    fi
  done
fi
