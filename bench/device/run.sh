#!/usr/bin/env bash
# On the GPU host, in a folder made by bench/device/publish.sh:
#   bash run.sh NAME [ARGS...]
# runs the published project NAME (AutoResearch.Runner, AutoResearch.Model.Tests, ...) with the .NET runtime beside this
# script, or the host's `dotnet` where there is none.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
[ $# -gt 0 ] || { echo "run.sh: name a published project: $(cd "$here" && ls -d */ | tr -d / | grep -v '^dotnet$' | tr '\n' ' ')" >&2; exit 2; }
name=$1; shift
[ -d "$here/$name" ] || { echo "run.sh: $name is not published in $here" >&2; exit 2; }
dotnet=dotnet
if [ -x "$here/dotnet/dotnet" ]; then
  export DOTNET_ROOT="$here/dotnet"
  dotnet="$here/dotnet/dotnet"
fi
config=$(ls "$here/$name"/*.runtimeconfig.json | head -1)
exec "$dotnet" "${config%.runtimeconfig.json}.dll" "$@"
