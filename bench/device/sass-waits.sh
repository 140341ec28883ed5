#!/usr/bin/env bash
# Where the CUDA toolkit's cuobjdump is (on the GPU host: /usr/local/cuda/bin; $CUOBJDUMP names another):
#   bash sass-waits.sh [--newer FILE] [CUBIN...]
# prints, for each kernel of the cubins that issues wgmma products, how many products (HGMMA) and how many waits on them
# (WARPGROUP.DEPBAR) its SASS holds. A kernel whose products overlap waits a few times (the flash backward: 32 products,
# 4 waits); one with a wait behind every product had its products serialised by ptxas, which may not say so (e.g. a
# product under a divergent branch, or too few registers for the products in flight). Such a line ends in "serialised"
# and the exit code is 1 (2 when a cubin or the tool is missing). Without cubins named, those of the kernel cache
# ($AUTORESEARCH_CACHE/kernels, else ~/.cache/autoresearch/kernels); --newer FILE keeps only cubins written after FILE
# (ab-profile.sh passes a file it touched before its runs, so it names the kernels compiled for them).
set -uo pipefail
newer=
files=()
while [ $# -gt 0 ]; do
  case "$1" in
    --newer) newer=${2:-}; shift; [ $# -gt 0 ] && shift
      [ -e "$newer" ] || { echo "sass-waits.sh: --newer takes an existing file; got '$newer'" >&2; exit 2; } ;;
    -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "sass-waits.sh: unknown option $1 (--newer FILE, --help)" >&2; exit 2 ;;
    *) files+=("$1"); shift ;;
  esac
done
tool=${CUOBJDUMP:-$(command -v cuobjdump || echo /usr/local/cuda/bin/cuobjdump)}
[ -x "$tool" ] || { echo "sass-waits.sh: no cuobjdump (looked for ${CUOBJDUMP:-cuobjdump on PATH and /usr/local/cuda/bin/cuobjdump}; set CUOBJDUMP)" >&2; exit 2; }
if [ ${#files[@]} -eq 0 ]; then
  cache=${AUTORESEARCH_CACHE:-$HOME/.cache/autoresearch}/kernels
  [ -d "$cache" ] || { echo "sass-waits.sh: no kernel cache at $cache, and no cubin named" >&2; exit 2; }
  while IFS= read -r f; do files+=("$f"); done < <(find "$cache" -maxdepth 1 -name '*.cubin' ${newer:+-newer "$newer"} | sort)
else
  [ -z "$newer" ] || { kept=(); for f in "${files[@]}"; do [ "$f" -nt "$newer" ] && kept+=("$f"); done; files=("${kept[@]+"${kept[@]}"}"); }
fi
status=0
for f in "${files[@]+"${files[@]}"}"; do
  [ -f "$f" ] || { echo "sass-waits.sh: $f is not a file" >&2; status=2; continue; }
  sass=$("$tool" -sass "$f" 2>&1) || { echo "sass-waits.sh: cuobjdump could not read $f: $(echo "$sass" | head -1)" >&2; status=2; continue; }
  printf '%s\n' "$sass" | awk -v file="$(basename "$f")" '
    function report() {
      if (name != "" && products > 0) {
        serial = products >= 2 && waits >= products
        printf "%-40s %-44s HGMMA %4d  DEPBAR %4d%s\n", file, name, products, waits, serial ? "  serialised" : ""
        if (serial) flagged = 1
      }
    }
    /Function : / { report(); name = $NF; products = 0; waits = 0; next }
    /HGMMA\./ { products++ }
    /WARPGROUP\.DEPBAR/ { waits++ }
    END { report(); exit flagged }'
  [ $? = 1 ] && [ $status = 0 ] && status=1
done
exit $status
