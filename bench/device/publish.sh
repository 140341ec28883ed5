#!/usr/bin/env bash
# Builds here what a GPU host needs to run the project without a .NET SDK: publish, copy, run.
#   bash bench/device/publish.sh [--out DIR] [--no-runtime] [--corpus FILE] [--baseline REV] PROJECT...
# PROJECT is a project folder (src/Runner, tests/AutoResearch.Model.Tests, ...). DIR (default artifacts/gpu-host) then holds
# one folder per project, published for linux-x64 (the kernels' .cu sources travel with the binaries), the .NET runtime this
# SDK runs on (leave it out with --no-runtime where the host has one), run.sh, gpu-check.sh, train-run.sh, kernels.sh,
# parity-run.sh, ab-profile.sh, sass-waits.sh and clocks.sh (which the others source), and with --corpus the text to prepare from (as
# corpus.txt.xz or corpus.txt), with --baseline the runner of git revision REV in DIR/baseline (built from a temporary
# worktree) for ab-profile.sh to compare against, and REVISION files naming the commits. Copy DIR to the GPU host (rsync -a,
# scp -r) and run there, e.g.
#   bash gpu-host/run.sh AutoResearch.Runner doctor
#   bash gpu-host/run.sh AutoResearch.Model.Tests            # an xunit v3 test project is an executable
#   bash gpu-host/gpu-check.sh AutoResearch.Model.Tests      # test projects, then `profile`
#   bash gpu-host/train-run.sh                               # prepare --from the corpus, the full train, a short warm one
#   bash gpu-host/kernels.sh --short                         # the kernel benchmarks (publish tests/AutoResearch.Bench.Tests)
#   bash gpu-host/parity-run.sh                              # the training-step parity, GPU against CPU, and its noise floor
#   bash gpu-host/ab-profile.sh                              # profile of the baseline and this build in turns, op by op
set -euo pipefail
cd "$(dirname "$0")/../.."
out=artifacts/gpu-host
runtime=yes
corpus=
baseline=
projects=()
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --no-runtime) runtime=no; shift ;;
    --corpus) corpus=$2; shift 2 ;;
    --baseline) baseline=$2; shift 2 ;;
    -*) echo "publish.sh: unknown option $1" >&2; exit 2 ;;
    *) projects+=("$1"); shift ;;
  esac
done
[ ${#projects[@]} -gt 0 ] || { echo "publish.sh: name at least one project folder, e.g. src/Runner" >&2; exit 2; }
if [ -n "$baseline" ]; then
  git rev-parse --verify -q "$baseline^{commit}" > /dev/null || { echo "publish.sh: --baseline $baseline is not a commit of this repository" >&2; exit 2; }
fi

rm -rf "$out"
mkdir -p "$out"
for project in "${projects[@]}"; do
  csproj=$(ls "$project"/*.csproj)
  name=$(basename "$csproj" .csproj)
  dotnet publish "$csproj" -c Release -o "$out/$name" --nologo -v quiet
done

if [ $runtime = yes ]; then
  # The shared runtime this SDK runs on, laid out as a .NET root: dotnet, host/fxr, shared/Microsoft.NETCore.App.
  root=$(dirname "$(readlink -f "$(command -v dotnet)")")
  version=$(dotnet --list-runtimes | awk '$1 == "Microsoft.NETCore.App" { v = $2 } END { print v }')
  mkdir -p "$out/dotnet/shared/Microsoft.NETCore.App" "$out/dotnet/host"
  cp "$root/dotnet" "$out/dotnet/"
  cp -r "$root/host/fxr" "$out/dotnet/host/"
  cp -r "$root/shared/Microsoft.NETCore.App/$version" "$out/dotnet/shared/Microsoft.NETCore.App/"
fi
if [ -n "$corpus" ]; then
  case "$corpus" in
    *.xz) cp "$corpus" "$out/corpus.txt.xz" ;;
    *) cp "$corpus" "$out/corpus.txt" ;;
  esac
fi
if [ -n "$baseline" ]; then
  tree=$(mktemp -d)
  trap 'git worktree remove --force "$tree" 2> /dev/null; rm -rf "$tree"' EXIT
  git worktree add --detach -q "$tree" "$baseline"
  dotnet publish "$tree/src/Runner/AutoResearch.Runner.csproj" -c Release -o "$out/baseline/AutoResearch.Runner" --nologo -v quiet
  git rev-parse --short "$baseline^{commit}" > "$out/baseline/REVISION"
fi
# The build's own commit, marked when the work tree differs from it.
changed=$(git status --porcelain -- src kernels tests bench Directory.Build.props Directory.Packages.props global.json 2> /dev/null)
echo "$(git rev-parse --short HEAD)${changed:+ with uncommitted changes}" > "$out/REVISION"
# program.md: the knob table a runner test checks against the code, found in a folder above the test's.
cp program.md "$out/"
cp bench/device/run.sh bench/device/gpu-check.sh bench/device/train-run.sh bench/device/kernels.sh bench/device/parity-run.sh bench/device/ab-profile.sh bench/device/clocks.sh bench/device/sass-waits.sh "$out/"
du -sh "$out"
