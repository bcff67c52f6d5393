#!/usr/bin/env bash
# Provisioning latency of tenantdb-init against the floor, per engine (PostgreSQL,
# MariaDB), over loopback with TLS verify-full against the test CA. For N fresh tenants,
# one after the other, it times each whole tenantdb-init process (start -> credentials
# written -> tenant login verified -> exit) and, interleaved with it, one process of
# bench/floor.cpp doing the same work over one admin connection plus one tenant login.
# Both are timed by bench/timeit.cpp (CLOCK_MONOTONIC, spawn to reap); the floor also
# reports the time it measured itself (in-process, without process start and exit).
# Prints a Markdown table headed by the machine it ran on.
#   bench/provision.sh [TENANTS]      (default 50)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-50}
[[ $n =~ ^[1-9][0-9]*$ ]] || { echo "usage: bench/provision.sh [TENANTS]" >&2; exit 2; }

# The binary that ships: static, as the Dockerfiles build it (the dynamic build spends
# several extra ms per process in the loader resolving libcurl's and OpenSSL's symbols).
static_build=${BUILD_DIR:-build-static}
BUILD_DIR=$static_build tools/build-static.sh >/dev/null
init=$PWD/$static_build/init/tenantdb-init
bench_build=${BENCH_BUILD_DIR:-build-bench}
cmake -S bench -B "$bench_build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$bench_build" -j "$(nproc)" >/dev/null
floor=$PWD/$bench_build/floor
timeit=$PWD/$bench_build/timeit

work=$(mktemp -d)
export TENANTDB_TESTDB_DIR="$PWD/$bench_build/testdb"
cleanup() {
  test/tools/testdb.sh stop all || true
  rm -rf "$work"
}
trap cleanup EXIT
test/tools/testdb.sh start all

# Every run provisions tenants never seen before, even against a reused data directory.
run=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')

# run_init ENGINE NAME OUTFILE: one timed tenantdb-init process; ns appended to OUTFILE.
run_init() {
  "$timeit" "$init" --local --connector-file "$TENANTDB_TESTDB_DIR/$1.connector" --tenant "$2" \
    --output-dir "$work/init-$1/$2" --timeout 60s --log-level warn 3>>"$3"
}
# run_floor ENGINE NAME OUTFILE INPROCFILE: one timed floor process.
run_floor() {
  "$timeit" "$floor" "$TENANTDB_TESTDB_DIR/$1.connector" "$work/floor-$1" "$2" 3>>"$3" |
    awk '{ print $2 }' >>"$4"
}

for e in pg mariadb; do
  # One untimed run of each first: page cache, server caches, first-connection costs.
  run_init "$e" "bench-$run-warm" /dev/null
  run_floor "$e" "w${run}_${e:0:1}" /dev/null /dev/null
  for ((i = 1; i <= n; i++)); do
    run_init "$e" "bench-$run-$i" "$work/$e.init"
    run_floor "$e" "t${run}_${e:0:1}$i" "$work/$e.floor" "$work/$e.inproc"
  done
done

# stat FILE: "median p99" in ms (nearest-rank percentiles).
stat() {
  sort -n "$1" | awk '{ v[NR] = $1 } END {
    m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    r = int(0.99 * NR); if (r < 0.99 * NR) r++
    printf "%.1f %.1f\n", m / 1e6, v[r] / 1e6 }'
}

cpu=$(awk -F: '/model name/ { sub(/^ +/, "", $2); print $2; exit }' /proc/cpuinfo)
echo
echo "Machine: ${cpu:-unknown CPU}, $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(uname -sr), $(date -u +%Y-%m-%d)"
echo
echo "Per tenant, $n fresh tenants per engine, sequential, loopback, TLS verify-full; ms. tenantdb-init: the static binary that ships."
echo
echo "| engine | tenantdb-init median | init p99 | floor (process) median | floor p99 | ratio median (p99) | floor in-process median (p99) |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
for e in pg mariadb; do
  read -r im ip <<<"$(stat "$work/$e.init")"
  read -r fm fp <<<"$(stat "$work/$e.floor")"
  read -r pm pp <<<"$(stat "$work/$e.inproc")"
  ratio=$(awk -v a="$im" -v b="$fm" -v c="$ip" -v d="$fp" 'BEGIN { printf "%.2f (%.2f)", a / b, c / d }')
  name=$([ "$e" = pg ] && echo PostgreSQL || echo MariaDB)
  echo "| $name | $im | $ip | $fm | $fp | $ratio | $pm ($pp) |"
done
