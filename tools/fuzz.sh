#!/usr/bin/env bash
# Fuzzes the proxy's parsers with libFuzzer (clang, AddressSanitizer, UndefinedBehaviorSanitizer):
#   postgres_front_door  a PostgreSQL client's first packets and local SCRAM messages
#   mysql_front_door     a MySQL client's HandshakeResponse41/SSLRequest, auth-switch
#                        response, and the command framer over arbitrary read sizes
#   upstream_replies     a server's login replies (PostgreSQL and MySQL/MariaDB)
# Sources are in fuzz/, seeds in fuzz/corpus/<target>/ (read only); everything built or
# found goes to build-fuzz/ (new corpus entries in build-fuzz/corpus/<target>/, crash,
# leak, timeout and OOM reproducers in build-fuzz/artifacts/<target>/).
#   tools/fuzz.sh [SECONDS]   builds, then runs each target SECONDS (default 20); exits
#                             non-zero on any finding and prints the reproducer's path
#   tools/fuzz.sh --seeds     rewrites fuzz/corpus/ with fuzz/make_corpus.cpp
# Replay one input: build-fuzz/<target> FILE
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=20
seeds=0
case ${1:-} in
  "") ;;
  --seeds) seeds=1 ;;
  *[!0-9]* | 0) echo "fuzz: usage: tools/fuzz.sh [SECONDS | --seeds]" >&2; exit 2 ;;
  *) seconds=$1 ;;
esac

cxx=$(command -v clang++-14 || command -v clang++ || true)
[ -n "$cxx" ] || { echo "fuzz: clang++ is missing (tools/install-deps.sh installs clang and libclang-rt-14-dev)" >&2; exit 1; }
compile=("$cxx")
if command -v ccache >/dev/null; then compile=(ccache "$cxx"); fi

out=${FUZZ_BUILD_DIR:-build-fuzz}
mkdir -p "$out/obj"
flags=(-std=c++20 -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
       -Icommon/src -Icommon/include -Ifuzz -Wall -Wextra)
# The parsers and the few sources they need (see their #includes); coverage-instrumented.
library=(common/src/proxy/postgres_protocol.cpp common/src/proxy/mysql_protocol.cpp
         common/src/base/base64.cpp common/src/base/secret.cpp)
targets=(postgres_front_door mysql_front_door upstream_replies)
declare -A max_len=([postgres_front_door]=20480 [mysql_front_door]=16384 [upstream_replies]=16384)

# Compiles two at a time (the test command's budget is short); fails if any compile did.
pids=()
spawn() {
  "$@" &
  pids+=($!)
  if [ ${#pids[@]} -ge 2 ]; then reap; fi
}
reap() {
  local failed=0
  for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
  pids=()
  [ "$failed" -eq 0 ] || { echo "fuzz: the build failed" >&2; exit 1; }
}

objects=()
for src in "${library[@]}"; do
  obj=$out/obj/$(basename "$src" .cpp).o
  spawn "${compile[@]}" "${flags[@]}" -fsanitize=fuzzer-no-link -c "$src" -o "$obj"
  objects+=("$obj")
done
reap

if [ "$seeds" -eq 1 ]; then
  "${compile[@]}" "${flags[@]}" fuzz/make_corpus.cpp "${objects[@]}" -lcrypto -o "$out/make_corpus"
  rm -rf fuzz/corpus
  "$out/make_corpus" fuzz/corpus
  echo "fuzz: wrote $(find fuzz/corpus -type f | wc -l) seeds into fuzz/corpus/"
  exit 0
fi

for t in "${targets[@]}"; do
  spawn "${compile[@]}" "${flags[@]}" -fsanitize=fuzzer "fuzz/$t.cpp" "${objects[@]}" -lcrypto -o "$out/$t"
done
reap

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
status=0
for t in "${targets[@]}"; do
  corpus=$out/corpus/$t
  artifacts=$out/artifacts/$t
  mkdir -p "$corpus" "$artifacts"
  log=$out/$t.log
  # New entries go into the first directory (build-fuzz); the seeds are only read.
  rc=0
  "$out/$t" -max_total_time="$seconds" -max_len="${max_len[$t]}" -rss_limit_mb=2048 -timeout=5 \
    -malloc_limit_mb=2048 -artifact_prefix="$artifacts/" -print_final_stats=1 \
    "$corpus" "fuzz/corpus/$t" >"$log" 2>&1 || rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n1 || true)
  if [ "$rc" -ne 0 ]; then
    status=1
    echo "fuzz: $t FAILED (exit $rc) after ${runs:-?} runs; log: $log" >&2
    grep -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error)' "$log" | head -n 5 >&2 || true
    grep -o 'Test unit written to .*' "$log" | sed 's/^Test unit written to /fuzz: reproducer: /' >&2 || true
    echo "fuzz: replay with: $out/$t <reproducer>" >&2
  else
    echo "fuzz: $t ok: ${runs:-?} runs in ${seconds}s, ${cov:-cov: ?}, corpus $(find "$corpus" -type f | wc -l) new + $(find "fuzz/corpus/$t" -type f | wc -l) seeds"
  fi
done
exit "$status"
