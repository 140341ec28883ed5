#!/usr/bin/env bash
# Sourced by the other GPU-host scripts: the SM clock, power and temperature logged every half second while a measurement
# runs, so that a result can be read against them (a GPU near its power limit lowers its clock, and a kernel then looks
# slower than it is). Never changes the card's settings; without nvidia-smi it does nothing.
#   clocks_start FILE    starts logging into FILE (csv: timestamp, SM MHz, W, C)
#   clocks_stop          stops it
#   clocks_summary FILE  one line: the median SM clock and its range, the mean power, the highest temperature
clocks_start() {
  clocks_pid=
  command -v nvidia-smi > /dev/null || return 0
  nvidia-smi --query-gpu=timestamp,clocks.sm,power.draw,temperature.gpu --format=csv,noheader,nounits -lms 500 > "$1" 2> /dev/null &
  clocks_pid=$!
}
clocks_stop() {
  [ -n "${clocks_pid:-}" ] && kill "$clocks_pid" 2> /dev/null
  clocks_pid=
}
clocks_summary() {
  [ -s "$1" ] || return 0
  awk -F', *' '$2 ~ /^[0-9]+$/ { c[++n] = $2; p += $3; if ($4 > t) t = $4 } END {
    if (n == 0) exit
    for (j = 2; j <= n; j++) { x = c[j]; for (k = j - 1; k >= 1 && c[k] > x; k--) c[k + 1] = c[k]; c[k + 1] = x }
    printf "SM clock: median %d MHz (%d to %d); power: mean %.0f W; temperature: up to %d C (%d samples, one each 0.5 s)\n", c[int((n + 1) / 2)], c[1], c[n], p / n, t, n }' "$1"
}
