#!/usr/bin/env bash
# The sanitizer trees compile the library as a unity build (tools/test-sanitizers.sh): CMake
# merges its sources 8 to a translation unit, and which files share one moves whenever a source
# is added. Two library sources that each define a file-local constant of one name then stop
# those trees compiling, which only clean-clone CI would show. Fails, naming the name and the
# files, when a `k`-named constant is defined at file scope in two library sources. Functions
# and types of one name are not checked.
set -euo pipefail
src=$1
cd "$src"
dups=$(grep -rnE '^(static )?(inline )?(constexpr|const) [^=;(]*\bk[A-Z][A-Za-z0-9_]*\s*(=|\{|\[)' \
         --include='*.cpp' base memory vmm devices net sandbox snapshot \
  | sed -E 's/^([^:]+):[0-9]+:[^=;{[]*\b(k[A-Z][A-Za-z0-9_]*)\s*(=|\{|\[).*/\2 \1/' \
  | sort -u | awk '{n[$1]++; f[$1] = f[$1] " " $2} END {for (k in n) if (n[k] > 1) print k ":" f[k]}')
if [ -n "$dups" ]; then
  echo "file-local constants defined in more than one library source (a unity batch would hold both):"
  echo "$dups"
  exit 1
fi
echo "every file-local k-constant of the library has its own name"
