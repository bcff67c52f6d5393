#!/usr/bin/env bash
# Runs clang-tidy with the checked-in .clang-tidy over the library (common/src), or over the
# files given, with ${BUILD_DIR:-build}/compile_commands.json (tools/build.sh writes it).
# Headers under common/ are checked through the sources that include them. By hand, not in
# CI: it takes minutes. TIDY_JOBS=N runs N at once (default 1). Fails, naming the files, on
# any finding.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${BUILD_DIR:-build}
command -v clang-tidy >/dev/null || { echo "tidy: clang-tidy is missing (apt-get install clang-tidy)" >&2; exit 1; }
[ -f "$build_dir/compile_commands.json" ] ||
  { echo "tidy: $build_dir/compile_commands.json is missing: run tools/build.sh first" >&2; exit 1; }
if [ $# -gt 0 ]; then
  files=("$@")
else
  mapfile -t files < <(git ls-files 'common/src/*.cpp')
fi
bad_list=$(mktemp)
trap 'rm -f "$bad_list"' EXIT
export build_dir bad_list
printf '%s\0' "${files[@]}" | xargs -0 -P "${TIDY_JOBS:-1}" -I{} sh -c \
  '{ clang-tidy -p "$build_dir" --quiet "$1" 2>&1 || echo "$1" >>"$bad_list"; } | grep -v "warnings* generated\.$" || true' sh {}
if [ -s "$bad_list" ]; then
  echo "tidy: findings in $(wc -l <"$bad_list") file(s): $(sort "$bad_list" | tr '\n' ' ')" >&2
  exit 1
fi
echo "tidy: ${#files[@]} files pass .clang-tidy"
