#!/usr/bin/env bash
# On the GPU host, in a folder made by `bench/device/publish.sh --baseline REV src/Runner ...` (baseline/ holds REV's runner):
#   bash ab-profile.sh [--rounds N] [--define FILE:MACRO[=VALUE]]... [PROFILE ARGS...]
# times the baseline and this build with `profile --tsv` in turns, N rounds each (default 4; the order A B, B A, A B, ... so
# that a drift of clocks or temperature over the call falls on both alike; about 30 s a profile on an H200), while
# nvidia-smi logs the SM clock, power and temperature every half second. Then it prints each op's median over the rounds
# for both builds and the change, the micro-step, optimizer step, whole step and peak memory the same way, and the clock,
# power and temperature each build ran at. A change smaller than the spread of one build's own rounds (printed beside it)
# is noise. The baseline must have `profile --tsv`. Logs, TSVs and the clock logs go to $LOGS (default ./logs/ab; the
# TSVs of an earlier call there are removed first); $STEP_TIMEOUT (seconds, default none) bounds each profile.
# --define (repeatable) times a variant of this build's kernels without rebuilding: `#define MACRO VALUE` is put at the top of
# kernels/FILE in a copy of this build's runner under $LOGS (the published folder stays as it is), e.g.
# --define mlp_gemm.cu:GEMM_TRIAL=1 for a trial switch the file reads under #ifndef GEMM_TRIAL. The kernel cache keys on the
# source, so the variant compiles afresh. Only a macro the file guards with #ifndef (and the launcher does not pass as -D)
# takes the value: one it defines unguarded is then defined twice.
# Where cuobjdump is, the kernels compiled for these runs (cubins the kernel cache gained) are listed last with their wgmma
# products and waits (sass-waits.sh), so that products ptxas serialised show up beside the times.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
logs=${LOGS:-$PWD/logs/ab}; mkdir -p "$logs"
rounds=4
defines=()
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=${2:-}; shift; [ $# -gt 0 ] && shift ;;
    --define) defines+=("${2:-}"); shift; [ $# -gt 0 ] && shift ;;
    *) break ;;
  esac
done
case "$rounds" in ''|*[!0-9]*) rounds=x ;; esac
[ "$rounds" != x ] && [ "$((10#$rounds))" -ge 1 ] \
  || { echo "ab-profile.sh: --rounds takes a whole number of at least 1" >&2; exit 2; }
rounds=$((10#$rounds))
[ -f "$here/baseline/AutoResearch.Runner/autoresearch.dll" ] \
  || { echo "ab-profile.sh: no baseline runner in $here/baseline (publish with --baseline REV)" >&2; exit 2; }
dotnet=dotnet
if [ -x "$here/dotnet/dotnet" ]; then
  export DOTNET_ROOT="$here/dotnet"
  dotnet="$here/dotnet/dotnet"
fi
runner_b="$here/AutoResearch.Runner"
if [ ${#defines[@]} -gt 0 ]; then
  # This build's runner copied, its kernel sources edited: the variant.
  for d in "${defines[@]}"; do
    file=${d%%:*} name=${d#*:}; name=${name%%=*}
    if [ "$file" = "$d" ] || [ ! -f "$runner_b/kernels/$file" ] || ! [[ "$name" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]]; then
      echo "ab-profile.sh: --define takes FILE:MACRO[=VALUE] with FILE a kernel source of this build (kernels/$file) and MACRO a C identifier; got '$d'" >&2
      exit 2
    fi
  done
  variant="$logs/runner-variant"
  rm -rf "$variant" && cp -r "$here/AutoResearch.Runner" "$variant" \
    || { echo "ab-profile.sh: could not copy this build's runner to $variant" >&2; exit 2; }
  for d in "${defines[@]}"; do
    file=${d%%:*} macro=${d#*:}
    name=${macro%%=*} value=
    [ "$name" != "$macro" ] && value=${macro#*=}
    { printf '#define %s %s\n' "$name" "$value"; cat "$variant/kernels/$file"; } > "$variant/kernels/$file.new" \
      && mv "$variant/kernels/$file.new" "$variant/kernels/$file"
  done
  runner_b=$variant
fi
echo "baseline $(cat "$here/baseline/REVISION" 2>/dev/null || echo '?'), this build $(cat "$here/REVISION" 2>/dev/null || echo '?')${defines[*]:+ with ${defines[*]}}; profile $*"
echo "$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1)"
# shellcheck source=clocks.sh
. "$here/clocks.sh"
rm -f "$logs"/[AB].*.tsv "$logs"/[AB].*.clocks.csv
# Cubins written after this file are the kernels compiled for these runs (sass-waits.sh, at the end).
compiled_after="$logs/.runs-started"; : > "$compiled_after"
tsvs=()
run() { # side round
  local dll="$runner_b/autoresearch.dll" tsv="$logs/$1.$2.tsv" log="$logs/$1.$2.log" code
  [ "$1" = A ] && dll="$here/baseline/AutoResearch.Runner/autoresearch.dll"
  clocks_start "$logs/$1.$2.clocks.csv"
  run_limited "$dotnet" "$dll" profile --tsv "$tsv" "${@:3}" > "$log" 2>&1
  code=$?
  clocks_stop
  case $code in
    0) tsvs+=("$tsv"); return 0 ;;
    124) echo "ab-profile.sh: profile of $1 (round $2) stopped after ${STEP_TIMEOUT:-?} s (a hang?); its log: $log" >&2 ;;
    *) echo "ab-profile.sh: profile of $1 (round $2) failed (exit $code); its log: $log" >&2; tail -5 "$log" >&2 ;;
  esac
  return $code
}
status=0
for ((i = 1; i <= rounds; i++)); do
  if ((i % 2)); then order="A B"; else order="B A"; fi
  for side in $order; do
    run "$side" "$i" "$@"
    code=$?
    [ $code = 0 ] && continue
    status=1
    # Interrupted (Ctrl-C, SIGTERM): stop here.
    if [ $code = 130 ] || [ $code = 143 ]; then exit $code; fi
  done
done
[ $status = 0 ] || exit 1
# Medians by (kind, name) over the rounds, in the baseline's order of its first round, then the names only this build has.
awk -F'\t' '
  function median(side, key,   m, j, k, t, a) {
    m = count[side, key]
    if (m == 0) return ""
    for (j = 1; j <= m; j++) a[j] = value[side, key, j]
    for (j = 2; j <= m; j++) { t = a[j]; for (k = j - 1; k >= 1 && a[k] > t; k--) a[k + 1] = a[k]; a[k + 1] = t }
    return (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
  }
  function spread(side, key,   m, j, lo, hi) {
    m = count[side, key]
    if (m < 2) return ""
    lo = hi = value[side, key, 1]
    for (j = 2; j <= m; j++) { if (value[side, key, j] < lo) lo = value[side, key, j]; if (value[side, key, j] > hi) hi = value[side, key, j] }
    return hi - lo
  }
  FNR == 1 { side = (FILENAME ~ /\/A\.[0-9]+\.tsv$/) ? "A" : "B"; next }
  {
    key = $1 "\t" $2
    if (!(key in seen)) { seen[key] = 1; order[++n] = key }
    value[side, key, ++count[side, key]] = $3
  }
  END {
    printf "%-50s %11s %11s %8s %17s\n", "", "baseline", "this build", "change", "spread (A / B)"
    for (i = 1; i <= n; i++) {
      split(order[i], part, "\t")
      a = median("A", order[i]); b = median("B", order[i])
      change = (a != "" && b != "" && a > 0) ? sprintf("%+7.1f%%", (b / a - 1) * 100) : ""
      sa = spread("A", order[i]); sb = spread("B", order[i])
      unit = part[1] == "memory" ? " MB" : " ms"
      printf "%-50s %11s %11s %8s %17s\n", part[1] == "op" ? part[2] : part[2] unit, a == "" ? "-" : sprintf("%.3f", a),
        b == "" ? "-" : sprintf("%.3f", b), change, (sa == "" ? "-" : sprintf("%.3f", sa)) " / " (sb == "" ? "-" : sprintf("%.3f", sb))
    }
  }' "${tsvs[@]}"
for side in A B; do
  [ $side = A ] && name=baseline || name="this build"
  echo "$name: $(clocks_summary "$logs"/$side.*.clocks.csv)"
done
# sass-waits.sh finds cuobjdump itself and prints nothing where there is none.
waits=$([ -f "$here/sass-waits.sh" ] && bash "$here/sass-waits.sh" --newer "$compiled_after" 2> /dev/null)
[ -z "$waits" ] || { echo "wgmma products and waits of the kernels compiled for these runs:"; echo "$waits"; }
