#!/usr/bin/env bash
# On the GPU host, in a folder made by bench/device/publish.sh --corpus FILE src/Runner:
#   bash train-run.sh [warm-budget-seconds]
# prepare from the corpus ($CORPUS, default the one beside this script), the full baseline `train` (cold kernel cache), then
# a second short `train` (warm kernel and token caches) to measure start-up and evaluation overhead. Logs under $LOGS
# (default ./logs); the summary blocks and progress lines here. The full run's cuBLASLt choices are copied there too
# (gemm-choices.json): on a GPU with no file in kernels/gemm-choices/, that file is what to ship for it.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
logs=${LOGS:-$PWD/logs}; mkdir -p "$logs"
warm=${1:-30}
corpus=${CORPUS:-$(ls "$here"/corpus.txt.xz "$here"/corpus.txt 2>/dev/null | head -1)}
[ -n "$corpus" ] || { echo "train-run.sh: no corpus: publish with --corpus FILE, or set CORPUS" >&2; exit 2; }
bash "$here/run.sh" AutoResearch.Runner prepare --from "$corpus" > "$logs/prepare.log" 2>&1 || { tail -20 "$logs/prepare.log"; exit 1; }
tail -3 "$logs/prepare.log"
bash "$here/run.sh" AutoResearch.Runner train > "$logs/train.log" 2>&1; echo "train exit $?"
cp "${AUTORESEARCH_CACHE:-$HOME/.cache/autoresearch}/kernels/gemm-choices.json" "$logs/" 2>/dev/null \
  && echo "the run's GEMM choices: $logs/gemm-choices.json"
tr '\r' '\n' < "$logs/train.log" | grep -E "^step" | awk 'NR % 50 == 1' | tail -14
tr '\r' '\n' < "$logs/train.log" | grep -vE "^step" | tail -16
bash "$here/run.sh" AutoResearch.Runner train --time-budget "$warm" > "$logs/train-warm.log" 2>&1; echo "warm train exit $?"
tr '\r' '\n' < "$logs/train-warm.log" | grep -vE "^step" | tail -13
