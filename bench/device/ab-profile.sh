#!/usr/bin/env bash
# On the GPU host, in a folder made by `bench/device/publish.sh --baseline REV src/Runner ...` (baseline/ holds REV's runner):
#   bash ab-profile.sh [--rounds N] [--source FILE:PATH]... [--define FILE:MACRO[=VALUE]]...
#                      [--variant NAME [--source ...]... [--define ...]...]... [PROFILE ARGS...]
# times the baseline and this build with `profile --tsv` in turns, N rounds each (default 4; the order A B, B A, A B, ... so
# that a drift of clocks or temperature over the call falls on both alike; about 30 s a profile on an H200), while
# nvidia-smi logs the SM clock, power and temperature every half second. Then it prints each op's median over the rounds
# for both builds and the change, the micro-step, optimizer step, whole step and peak memory the same way (and, where the
# GPU reports them through NVML, the energy of a whole step and the median SM clock during it), and the clock, power and
# temperature each build ran at. A change smaller than the spread of one build's own rounds (printed beside it)
# is noise. The baseline must have `profile --tsv`. Logs, TSVs and the clock logs go to $LOGS (default ./logs/ab; the
# TSVs of an earlier call there are removed first); $STEP_TIMEOUT (seconds, default none) bounds each profile.
# --define (repeatable) times a variant of this build's kernels without rebuilding: `#define MACRO VALUE` is put at the top of
# kernels/FILE in a copy of this build's runner under $LOGS (the published folder stays as it is), e.g.
# --define mlp_gemm.cu:GEMM_TRIAL=1 for a trial switch the file reads under #ifndef GEMM_TRIAL. The kernel cache keys on the
# source, so the variant compiles afresh. Only a macro the file guards with #ifndef (and the launcher does not pass as -D)
# takes the value: one it defines unguarded is then defined twice.
# --source (repeatable) puts the file at PATH (relative to the folder it is called from, or absolute) in place of kernels/FILE
# in the variant's copy, before its defines: a kernel or header from another branch, timed in the same rounds as this build's
# own variants, e.g. --source flash_backward.cu:../trial/flash_backward.cu.
# --variant NAME (repeatable) times several variants against one baseline in the same rounds (A B C ..., then ... C B A),
# so each costs one profile a round instead of two: the --source and --define options after it make that variant (none: this
# build as published). Those before the first --variant make the first variant, "this build". The table then has a
# column and a change for each; up to 8 variants.
# A timing-only variant (wrong gradients) needs --fixed-weights among the PROFILE ARGS (both builds must have it), or its
# updates change the weights, the data and the clocks every kernel runs at.
# Where cuobjdump is, the kernels compiled for these runs (cubins the kernel cache gained) are listed last with their wgmma
# products and waits (sass-waits.sh), so that products ptxas serialised show up beside the times.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
logs=${LOGS:-$PWD/logs/ab}; mkdir -p "$logs"
rounds=4
# Variant i: its name, its defines one a line and its sources (FILE:absolute path) one a line. The first, "this build",
# exists unless only named variants are given.
names=() defs=() srcs=()
current=-1
# A new variant, with no defines or sources yet, made the current one.
add_variant() { names+=("$1"); defs+=(""); srcs+=(""); current=$((${#names[@]} - 1)); }
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=${2:-}; shift; [ $# -gt 0 ] && shift ;;
    --define)
      [ $current -ge 0 ] || add_variant "this build"
      defs[current]+="${2:-}"$'\n'; shift; [ $# -gt 0 ] && shift ;;
    --source)
      [ $current -ge 0 ] || add_variant "this build"
      # A relative PATH is taken from the folder the script is called from, kept absolute for the listing below.
      source_option=${2:-}
      case $source_option in *:/*|*:) ;; *:*) source_option="${source_option%%:*}:$PWD/${source_option#*:}" ;; esac
      srcs[current]+="$source_option"$'\n'; shift; [ $# -gt 0 ] && shift ;;
    --variant)
      name=${2:-}
      if ! [[ "$name" =~ ^[A-Za-z0-9][A-Za-z0-9_.=-]{0,23}$ ]]; then
        echo "ab-profile.sh: --variant takes a name of letters, digits and _ . = - (at most 24, not starting with a sign); got '$name'" >&2
        exit 2
      fi
      add_variant "$name"; shift; [ $# -gt 0 ] && shift ;;
    *) break ;;
  esac
done
[ ${#names[@]} -gt 0 ] || add_variant "this build"
[ ${#names[@]} -le 8 ] || { echo "ab-profile.sh: at most 8 variants a call; got ${#names[@]}" >&2; exit 2; }
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
# Side A is the baseline; variant i is side B, C, ... (its TSVs, logs and clock logs are named by that letter).
letters=(B C D E F G H I)
runners=()
for ((v = 0; v < ${#names[@]}; v++)); do
  runner="$here/AutoResearch.Runner"
  if [ -n "${defs[v]}${srcs[v]}" ]; then
    # This build's runner copied, its kernel sources replaced and edited: the variant.
    mapfile -t sources < <(printf '%s' "${srcs[v]}")
    for d in "${sources[@]}"; do
      file=${d%%:*} path=${d#*:}
      if [ "$file" = "$d" ] || [ -z "$file" ] || [ ! -f "$runner/kernels/$file" ] || [ ! -f "$path" ] || [ ! -r "$path" ]; then
        echo "ab-profile.sh: --source takes FILE:PATH with FILE a kernel source of this build (kernels/$file) and PATH a readable file; got '$d'" >&2
        exit 2
      fi
    done
    mapfile -t list < <(printf '%s' "${defs[v]}")
    for d in "${list[@]}"; do
      file=${d%%:*} name=${d#*:}; name=${name%%=*}
      if [ "$file" = "$d" ] || [ ! -f "$runner/kernels/$file" ] || ! [[ "$name" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]]; then
        echo "ab-profile.sh: --define takes FILE:MACRO[=VALUE] with FILE a kernel source of this build (kernels/$file) and MACRO a C identifier; got '$d'" >&2
        exit 2
      fi
    done
    runner="$logs/runner-${letters[v]}"
    rm -rf "$runner" && cp -r "$here/AutoResearch.Runner" "$runner" \
      || { echo "ab-profile.sh: could not copy this build's runner to $runner" >&2; exit 2; }
    for d in "${sources[@]}"; do
      file=${d%%:*} path=${d#*:}
      cp "$path" "$runner/kernels/$file.new" && mv "$runner/kernels/$file.new" "$runner/kernels/$file" \
        || { echo "ab-profile.sh: could not put $path in place of kernels/$file in $runner" >&2; exit 2; }
    done
    for d in "${list[@]}"; do
      file=${d%%:*} macro=${d#*:}
      name=${macro%%=*} value=
      [ "$name" != "$macro" ] && value=${macro#*=}
      { printf '#define %s %s\n' "$name" "$value"; cat "$runner/kernels/$file"; } > "$runner/kernels/$file.new" \
        && mv "$runner/kernels/$file.new" "$runner/kernels/$file"
    done
  fi
  runners+=("$runner")
done
sides="A ${letters[*]:0:${#names[@]}}"
echo "baseline $(cat "$here/baseline/REVISION" 2>/dev/null || echo '?'), this build $(cat "$here/REVISION" 2>/dev/null || echo '?'); profile $*"
for ((v = 0; v < ${#names[@]}; v++)); do
  echo "${letters[v]}: ${names[v]}$([ -n "${srcs[v]}" ] && printf ' with %s' "$(printf '%s' "${srcs[v]}" | sed 's/:/ from /' | paste -sd ' ')")$([ -n "${defs[v]}" ] && printf ' with %s' "$(printf '%s' "${defs[v]}" | paste -sd ' ')")"
done
echo "$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1)"
# shellcheck source=clocks.sh
. "$here/clocks.sh"
rm -f "$logs"/[A-I].*.tsv "$logs"/[A-I].*.clocks.csv
# Cubins written after this file are the kernels compiled for these runs (sass-waits.sh, at the end).
compiled_after="$logs/.runs-started"; : > "$compiled_after"
tsvs=()
run() { # side round
  local dll="$here/baseline/AutoResearch.Runner/autoresearch.dll" tsv="$logs/$1.$2.tsv" log="$logs/$1.$2.log" code v
  for ((v = 0; v < ${#names[@]}; v++)); do [ "$1" = "${letters[v]}" ] && dll="${runners[v]}/autoresearch.dll"; done
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
  if ((i % 2)); then order=$sides; else order=$(printf '%s\n' $sides | tac | tr '\n' ' '); fi
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
# Medians by (kind, name) over the rounds, in the order of the first TSV (the baseline's first round), then the names only a
# variant has.
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
  FNR == 1 { side = FILENAME; sub(/^.*\//, "", side); side = substr(side, 1, 1); next }
  {
    key = $1 "\t" $2
    if (!(key in seen)) { seen[key] = 1; order[++n] = key }
    value[side, key, ++count[side, key]] = $3
  }
  END {
    nv = split(labels, label, "\t"); split(letters, letter, " ")
    printf "%-50s %11s", "", "baseline"
    spreads = "A"
    for (v = 1; v <= nv; v++) { printf " %11s %8s", substr(label[v], 1, 11), "change"; spreads = spreads " / " letter[v] }
    printf " %17s\n", "spread (" spreads ")"
    for (i = 1; i <= n; i++) {
      split(order[i], part, "\t")
      a = median("A", order[i])
      unit = part[1] == "memory" ? " MB" : part[1] == "energy" ? " J" : part[1] == "clock" ? " MHz" : " ms"
      printf "%-50s %11s", part[1] == "op" ? part[2] : part[2] unit, a == "" ? "-" : sprintf("%.3f", a)
      sa = spread("A", order[i]); spreads = (sa == "" ? "-" : sprintf("%.3f", sa))
      for (v = 1; v <= nv; v++) {
        b = median(letter[v], order[i])
        change = (a != "" && b != "" && a > 0) ? sprintf("%+7.1f%%", (b / a - 1) * 100) : ""
        sb = spread(letter[v], order[i]); spreads = spreads " / " (sb == "" ? "-" : sprintf("%.3f", sb))
        printf " %11s %8s", b == "" ? "-" : sprintf("%.3f", b), change
      }
      printf " %17s\n", spreads
    }
  }' labels="$(IFS=$'\t'; echo "${names[*]}")" letters="${letters[*]}" "${tsvs[@]}"
echo "baseline: $(clocks_summary "$logs"/A.*.clocks.csv)"
for ((v = 0; v < ${#names[@]}; v++)); do
  echo "${names[v]}: $(clocks_summary "$logs"/${letters[v]}.*.clocks.csv)"
done
# sass-waits.sh finds cuobjdump itself and prints nothing where there is none.
waits=$([ -f "$here/sass-waits.sh" ] && bash "$here/sass-waits.sh" --newer "$compiled_after" 2> /dev/null)
[ -z "$waits" ] || { echo "wgmma products and waits of the kernels compiled for these runs:"; echo "$waits"; }
