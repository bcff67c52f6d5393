#!/usr/bin/env bash
# Fails, naming the files, when a C or C++ source differs from the house style in
# .clang-format. Fix with: git ls-files '*.cpp' '*.hpp' '*.c' '*.h' | xargs clang-format -i
# The style is pinned to Debian 12's clang-format (14); other versions may disagree.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v clang-format >/dev/null || { echo "check-format: clang-format is missing (tools/install-deps.sh installs it)" >&2; exit 1; }
mapfile -t files < <(git ls-files '*.cpp' '*.hpp' '*.c' '*.h' 2>/dev/null || find common init sidecar test bench -name '*.[ch]pp' -o -name '*.[ch]')
bad=()
for f in "${files[@]}"; do
  clang-format --dry-run -Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done
if [ ${#bad[@]} -ne 0 ]; then
  echo "check-format: ${#bad[@]} file(s) differ from .clang-format: ${bad[*]}" >&2
  echo "check-format: run clang-format -i on them" >&2
  exit 1
fi
echo "check-format: ${#files[@]} files follow .clang-format"
