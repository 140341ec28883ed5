#!/usr/bin/env bash
# On the GPU host, in a folder made by `bash bench/device/publish.sh tests/AutoResearch.Bench.Tests` (the bench tests' output
# holds the bench too):
#   bash kernels.sh [--short] [bench options...]
# runs the kernel benchmarks (bench/Kernels: every family, each kernel checked against the CPU reference before it is timed)
# and writes $LOGS/kernels.md (default ./logs): the device, then one markdown table per family (BenchmarkDotNet's GitHub
# exporter), and $LOGS/kernels.log (the whole log; "REFUSED" lines name any kernel that failed its check). Full mode (the
# default) runs every configuration with 3 warm-ups and 10 timed iterations (about 3 minutes on an H200, most of it the CPU
# checks and a cold kernel cache); --short the baselines with 1 + 3. Options after it go to the bench: --filter '*RmsNorm*'
# for one family, --before DIR for a before/after table (DIR a kernels/ folder from another commit, copied along),
# --configs a,b. AutoResearch.Bench.Tests runs first (with the GPU test that breaks rmsnorm_backward and sees it refused);
# publishing bench/ alone skips it.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${LOGS:-$PWD/logs}; mkdir -p "$out"
artifacts=/tmp/bench-artifacts; rm -rf "$artifacts"
filter=(--filter 'AutoResearch.Bench.Kernels.*')
for a in "$@"; do [ "$a" = "--filter" ] && filter=(); done

bash "$here/run.sh" AutoResearch.Bench.Tests > "$out/bench-tests.log" 2>&1
if grep -qi "total:" "$out/bench-tests.log"; then
  echo "AutoResearch.Bench.Tests:"
  sed 's/\x1b\[[0-9;]*m//g' "$out/bench-tests.log" | grep -iE "\[FAIL\]|^failed |total:|failed:|succeeded:|skipped:" | head -20
else
  echo "AutoResearch.Bench.Tests not run: $(head -1 "$out/bench-tests.log")"
fi

start=$(date +%s)
# shellcheck source=clocks.sh
. "$here/clocks.sh"
clocks_start "$out/kernels-clocks.csv"
bash "$here/run.sh" AutoResearch.Bench "${filter[@]}" --artifacts "$artifacts" "$@" > "$out/kernels.log" 2>&1
status=$?
clocks_stop
{
  echo "# Kernel benchmarks"
  echo
  echo "$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1); $(date -u +%Y-%m-%dT%H:%MZ); bench $*"
  echo
  grep -m1 "^// device peaks:" "$out/kernels.log" | sed 's|^// ||'
  clocks_summary "$out/kernels-clocks.csv"
  echo
  first=yes
  for f in "$artifacts"/results/*-report-github.md; do
    [ -f "$f" ] || continue
    echo "## $(basename "$f" -report-github.md | sed 's/^AutoResearch\.Bench\.Kernels\.//')"
    echo
    # BenchmarkDotNet's environment block (fenced) once, before the first table.
    if [ $first = yes ]; then cat "$f"; first=no; else awk '/^```/ { fenced = !fenced; next } !fenced' "$f"; fi
    echo
  done
  echo "Refused (check failed, not timed):"
  grep "^// REFUSED" "$out/kernels.log" | sed 's|^// ||' || echo "none"
} > "$out/kernels.md"
echo "bench exit $status after $(( $(date +%s) - start )) s; tables in $out/kernels.md"
grep -E "^// device peaks|^// REFUSED|Benchmarks with issues" "$out/kernels.log" | head -20
exit $status
