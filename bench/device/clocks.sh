#!/usr/bin/env bash
# Sourced by the other GPU-host scripts: the SM clock, power and temperature of the GPU the runs use (the first of
# $CUDA_VISIBLE_DEVICES, else 0) logged every half second while a measurement runs, so that a result can be read against them
# (a GPU near its power limit lowers its clock, and a kernel then looks slower than it is). Never changes the card's
# settings; without nvidia-smi it does nothing.
#   clocks_start FILE       starts logging into FILE (csv: timestamp, SM MHz, W, C); stopped on exit at the latest
#   clocks_stop             stops it
#   clocks_summary FILE...  one line over the files: the median SM clock and its range, the mean power, the highest temperature
#   run_limited CMD...      runs CMD, under `timeout` when $STEP_TIMEOUT (seconds) is set; exit 124 when it was stopped
clocks_start() {
  clocks_pid=
  command -v nvidia-smi > /dev/null || return 0
  local device=${CUDA_VISIBLE_DEVICES:-0}
  device=${device%%,*}
  case "$device" in ''|*[!0-9]*) device=0 ;; esac
  nvidia-smi -i "$device" --query-gpu=timestamp,clocks.sm,power.draw,temperature.gpu --format=csv,noheader,nounits -lms 500 > "$1" 2> /dev/null &
  clocks_pid=$!
  trap clocks_stop EXIT
}
clocks_stop() {
  [ -n "${clocks_pid:-}" ] && kill "$clocks_pid" 2> /dev/null
  clocks_pid=
}
clocks_summary() {
  local files=()
  for f in "$@"; do [ -s "$f" ] && files+=("$f"); done
  [ ${#files[@]} -gt 0 ] || return 0
  awk -F', *' '$2 ~ /^[0-9]+$/ {
      c[++n] = $2
      if ($3 ~ /^[0-9.]+$/) { p += $3; pn++ }
      if ($4 ~ /^[0-9]+$/ && $4 > t) t = $4
    }
    END {
      if (n == 0) exit
      for (j = 2; j <= n; j++) { x = c[j]; for (k = j - 1; k >= 1 && c[k] > x; k--) c[k + 1] = c[k]; c[k + 1] = x }
      printf "SM clock: median %d MHz (%d to %d); power: %s; temperature: up to %d C (%d samples, one each 0.5 s)\n",
        c[int((n + 1) / 2)], c[1], c[n], (pn > 0 ? sprintf("mean %.0f W", p / pn) : "not reported"), t, n
    }' "${files[@]}"
}
run_limited() {
  if [ -n "${STEP_TIMEOUT:-}" ]; then
    # --foreground: Ctrl-C still reaches the command (it is the process itself, not a shell, so nothing is left behind);
    # -k: a process that ignores the stop is killed 30 s later.
    timeout --foreground -k 30 "$STEP_TIMEOUT" "$@"
  else
    "$@"
  fi
}
