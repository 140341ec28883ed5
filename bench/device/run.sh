#!/usr/bin/env bash
# On the GPU host, in a folder made by bench/device/publish.sh:
#   bash run.sh NAME [ARGS...]
# runs the published project NAME (AutoResearch.Runner, AutoResearch.Model.Tests, ...), or an app published inside one (the
# bench tests' folder holds AutoResearch.Bench), with the .NET runtime beside this script, or the host's `dotnet` where there
# is none.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
[ $# -gt 0 ] || { echo "run.sh: name a published project: $(cd "$here" && ls -d */ | tr -d / | grep -v '^dotnet$' | tr '\n' ' ')" >&2; exit 2; }
name=$1; shift
# The app: NAME's own runtimeconfig anywhere in the published folders, else the one in the folder NAME.
config=$(ls "$here"/*/"$name.runtimeconfig.json" 2>/dev/null | head -1 || true)
if [ -z "$config" ] && [ -d "$here/$name" ]; then
  config=$(ls "$here/$name"/*.runtimeconfig.json 2>/dev/null | head -1 || true)
fi
[ -n "$config" ] || { echo "run.sh: $name is not published in $here" >&2; exit 2; }
dotnet=dotnet
if [ -x "$here/dotnet/dotnet" ]; then
  export DOTNET_ROOT="$here/dotnet"
  dotnet="$here/dotnet/dotnet"
  # The tests that start the CLI as a child process find this runtime there (the host has no dotnet on PATH).
  export DOTNET_HOST_PATH="$dotnet"
fi
exec "$dotnet" "${config%.runtimeconfig.json}.dll" "$@"
