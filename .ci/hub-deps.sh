#!/usr/bin/env bash
# Installs what the hub tests need in CI: git (bundles) and Debian's chromium (the dashboard browser test).
# Idempotent and quiet; without root or apt-get it only says what is missing (the browser test then reports SKIPPED).
set -euo pipefail
missing=()
command -v git >/dev/null 2>&1 || missing+=(git)
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "hub-deps: missing ${missing[*]} (needs root and apt-get to install); the hub browser test will be skipped" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq "${missing[@]}" >/dev/null
