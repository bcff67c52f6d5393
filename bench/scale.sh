#!/usr/bin/env bash
# Provisioning at scale, per engine (PostgreSQL, MariaDB), over loopback with TLS
# verify-full against the test CA. Provisions TENANTS fresh tenants on one server with
# CONCURRENCY tenantdb-init processes running at once (bench/pool.cpp: start, end and exit
# status of each process), then checks that every tenth of them logs in with the
# credentials it was given (an init that exited 0 but whose credentials do not work counts
# as a failure). The floor is bench/floor.cpp --parallel: the same statements and files
# for the same number of fresh tenants, CONCURRENCY at a time in one process, i.e. the raw
# DDL throughput at that concurrency; and once more with one floor process per tenant
# through the same pool as the inits (what starting a process per tenant costs, apart from
# what the init does beyond the floor). Each run gets its own fresh server (test/tools/
# testdb.sh in a private state directory, removed afterwards), so both start from the same
# empty catalog. Prints Markdown tables headed by the machine it ran on; progress and
# failures go to stderr, and failed tenants' stderr is kept in BENCH_BUILD_DIR/scale-RUN/.
#   bench/scale.sh [TENANTS [CONCURRENCY [ENGINE...]]]   (defaults 1000, 20, pg mariadb)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000}
conc=${2:-20}
engines=("${@:3}")
((${#engines[@]})) || engines=(pg mariadb)
usage() { echo "usage: bench/scale.sh [TENANTS [CONCURRENCY [pg|mariadb...]]]" >&2; exit 2; }
[[ $n =~ ^[1-9][0-9]*$ && $conc =~ ^[1-9][0-9]*$ ]] || usage
for e in "${engines[@]}"; do [[ $e == pg || $e == mariadb ]] || usage; done

# The binary that ships: static, as bench/provision.sh and the Dockerfiles use it.
static_build=${BUILD_DIR:-build-static}
BUILD_DIR=$static_build tools/build-static.sh >/dev/null
init=$PWD/$static_build/init/tenantdb-init
build_type="static $(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$static_build/CMakeCache.txt")"
bench_build=${BENCH_BUILD_DIR:-build-bench}
cmake -S bench -B "$bench_build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$bench_build" -j "$(nproc)" >/dev/null
floor=$PWD/$bench_build/floor
pool=$PWD/$bench_build/pool

log() { printf 'scale: %s\n' "$*" >&2; }
# As root the servers run as postgres and mysql, which must be able to reach their data.
work=$(mktemp -d)
chmod 0755 "$work"
server_dir=''
stop_server() {
  if [ -n "$server_dir" ]; then
    TENANTDB_TESTDB_DIR=$server_dir test/tools/testdb.sh stop all 2>/dev/null || true
    rm -rf "$server_dir"
    server_dir=''
  fi
}
cleanup() {
  stop_server
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
started=$SECONDS

# Every run provisions tenants never seen before, and keeps its failures apart.
run=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
keep=$PWD/$bench_build/scale-$run

# start_server ENGINE WHAT: a fresh private server; sets connector and server_version.
start_server() {
  server_dir=$work/$1-$2-db
  TENANTDB_TESTDB_DIR=$server_dir test/tools/testdb.sh start "$1"
  connector=$server_dir/$1.connector
  if [ "$1" = pg ]; then
    server_version=$(grep -o -m1 'PostgreSQL [0-9.]*' "$server_dir/pg/log/postgresql.log")
  else
    server_version="MariaDB $(grep -o -m1 "Version: '[0-9.]*" "$server_dir/mariadb/log/mariadbd.err" | tr -d "'" |
      cut -d' ' -f2)"
  fi
}

# names PREFIX: PREFIX1 .. PREFIXn, one a line.
names() { awk -v p="$1" -v n="$n" 'BEGIN { for (i = 1; i <= n; i++) print p i }'; }

# keep_failure ENGINE NAME TEXT-FILE: save what a failed tenant left, and show its tail.
keep_failure() {
  mkdir -p "$keep/$1"
  [ -f "$3" ] || echo "(no stderr)" >"$3"
  cp "$3" "$keep/$1/$2.err"
  log "$1 $2 failed: $(tail -n 3 "$3" | tr '\n' ' ')"
}

# run_init ENGINE: the pool of inits, then the login check; writes $work/ENGINE.init
# (name start end status, status 0 only for a tenant that exited 0 and, where checked,
# logged in) and $work/ENGINE.init-failures (exit, login).
run_init() {
  local e=$1 out=$work/$1-init err=$work/$1-init-err every checks=() name status line
  mkdir -p "$out" "$err"
  start_server "$e" init
  log "$e: $n tenantdb-init, $conc at a time ($server_version)"
  # One untimed tenant first: page cache, server caches, first-connection costs.
  "$init" --local --connector-file "$connector" --tenant "warm-$run" --output-dir "$out/warm" \
    --timeout 120s --log-level warn
  names "scale-$run-" | "$pool" "$conc" "$err" "$init" --local --connector-file "$connector" \
    --tenant {} --output-dir "$out/{}" --timeout 120s --log-level warn >"$work/$e.pool" || true
  every=$((n >= 100 ? n / 10 : 1))
  local exit_failures=0 login_failures=0
  while read -r name _ _ status; do
    if [ "$status" != 0 ]; then
      exit_failures=$((exit_failures + 1))
      keep_failure "$e" "$name" "$err/$name.err"
    elif [ $((${name##*-} % every)) = 0 ]; then
      checks+=("$out/$name")
    fi
  done <"$work/$e.pool"
  log "$e: checking ${#checks[@]} tenants' credentials"
  "$floor" --check-login "$connector" "${checks[@]}" >"$work/$e.logins" || true
  grep ' fail: ' "$work/$e.logins" >"$work/$e.badlogins" || true
  login_failures=$(wc -l <"$work/$e.badlogins")
  if ((login_failures)); then
    while read -r line; do
      name=${line%% fail: *}
      name=${name##*/}
      printf '%s\n' "$line" >"$err/$name.login"
      keep_failure "$e" "$name" "$err/$name.login"
    done <"$work/$e.badlogins"
  fi
  # A tenant whose credentials do not log in is a failure, whatever its exit status.
  awk 'FILENAME == ARGV[1] { sub(/.*\//, "", $1); bad[$1] = 1; next }
       { if ($1 in bad) $4 = "login"; print }' "$work/$e.badlogins" "$work/$e.pool" >"$work/$e.init"
  echo "$exit_failures $login_failures ${#checks[@]}" >"$work/$e.init-failures"
  stop_server
}

# run_floor ENGINE MODE: the floor at the same concurrency, on a fresh server; writes
# $work/ENGINE.MODE. MODE floor: one process whose CONCURRENCY workers take the next tenant
# (the raw throughput); floor-procs: one floor process per tenant through the same pool as
# the inits, which separates the cost of starting a process per tenant from the init's own.
run_floor() {
  local e=$1 mode=$2 out=$work/$1-$2 err=$work/$1-$2-err name status
  mkdir -p "$out" "$err"
  start_server "$e" "$mode"
  log "$e: $mode, $n tenants, $conc at a time"
  "$floor" "$connector" "$out" "w${run}" >/dev/null
  if [ "$mode" = floor ]; then
    # shellcheck disable=SC2046 # one argument per tenant name
    "$floor" --parallel "$conc" "$connector" "$out" $(names "s${run}_") >"$work/$e.$mode" \
      2>"$work/$e.$mode-err" || true
  else
    names "p${run}_" | "$pool" "$conc" "$err" "$floor" "$connector" "$out" {} >"$work/$e.$mode" || true
  fi
  while read -r name _ _ status; do
    [ "$status" = 0 ] && continue
    [ -f "$err/$name.err" ] || grep -F "floor: $name: " "$work/$e.$mode-err" >"$err/$name.err" || true
    keep_failure "$e-$mode" "$name" "$err/$name.err"
  done <"$work/$e.$mode"
  stop_server
}

# summary FILE: "failures wall_s tenants_per_s p50_ms p99_ms rank_ms..." over the lines
# "name start_ns end_ns status" of FILE. The time per tenant at rank r (completion order)
# is the median over the tenants completing within half ranks of it.
half=$((n / 20 < 10 ? (n / 20 < 1 ? 1 : n / 20) : 10))
ranks=$(awk -v n="$n" 'BEGIN { split("0.01 0.1 0.25 0.5 0.75 1", f)
  for (i = 1; i <= 6; i++) { r = int(f[i] * n + 0.5); if (r < 1) r = 1; printf "%d ", r } }')
summary() {
  sort -n -k3 "$1" | awk -v n="$n" -v half="$half" -v ranks="$ranks" '
    function isort(a, m,   i, j, v) {  # plain awk has no asort
      for (i = 2; i <= m; i++) { v = a[i]; for (j = i - 1; j >= 1 && a[j] > v; j--) a[j + 1] = a[j]; a[j + 1] = v } }
    function median(a, lo, hi,   m, i, w) { m = 0
      for (i = lo; i <= hi; i++) w[++m] = a[i]
      isort(w, m); return (m % 2) ? w[(m + 1) / 2] : (w[m / 2] + w[m / 2 + 1]) / 2 }
    { k++; d[k] = $3 - $2; if ($4 != 0) failures++; else ok[++good] = $3 - $2
      if (k == 1 || $2 < first) first = $2; if ($3 > last) last = $3 }
    END {
      wall = (last - first) / 1e9
      isort(ok, good); r99 = int(0.99 * good); if (r99 < 0.99 * good) r99++
      printf "%d %.1f %.2f %.0f %.0f", failures, wall, k / wall, median(ok, 1, good) / 1e6, ok[r99] / 1e6
      split(ranks, rs, " ")
      for (i = 1; i in rs; i++) { lo = rs[i] - half; hi = rs[i] + half
        if (lo < 1) lo = 1; if (hi > k) hi = k; printf " %.0f", median(d, lo, hi) / 1e6 }
      print "" }'
}

declare -A version
for e in "${engines[@]}"; do
  run_init "$e"
  version[$e]=$server_version
  run_floor "$e" floor
  run_floor "$e" floor-procs
done

cpu=$(awk -F: '/model name/ { sub(/^ +/, "", $2); print $2; exit }' /proc/cpuinfo)
servers=$(for e in "${engines[@]}"; do echo "${version[$e]}"; done | paste -sd, | sed 's/,/, /g')
echo
echo "Machine: ${cpu:-unknown CPU}, $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(uname -sr), $servers, tenantdb-init $build_type, $(date -u +%Y-%m-%d)"
for e in "${engines[@]}"; do
  read -r i_f iw it ip50 ip99 irs <<<"$(summary "$work/$e.init")"
  read -r ff fw ft fp50 fp99 frs <<<"$(summary "$work/$e.floor")"
  read -r pf pw pt pp50 pp99 prs <<<"$(summary "$work/$e.floor-procs")"
  read -r exit_failures login_failures checked <"$work/$e.init-failures"
  ratio=$(awk -v a="$it" -v b="$ft" 'BEGIN { printf "%.2f", a / b }')
  pratio=$(awk -v a="$pt" -v b="$ft" 'BEGIN { printf "%.2f", a / b }')
  echo
  echo "${version[$e]}: $n fresh tenants, $conc at a time, loopback, TLS verify-full." \
    "Failures: nonzero exits $exit_failures, credentials that did not log in" \
    "$login_failures of $checked checked. Time per tenant at rank r: median over the" \
    "tenants completing within $half ranks of r, in ms."
  echo
  echo "| run | failures | wall s | tenants/s | vs floor | p50 ms | p99 ms |$(for r in $ranks; do printf ' @%s |' "$r"; done)"
  echo "| --- | --- | --- | --- | --- | --- | --- |$(for _ in $ranks; do printf ' --- |'; done)"
  echo "| tenantdb-init | $i_f | $iw | $it | $ratio | $ip50 | $ip99 | ${irs// / | } |"
  echo "| floor | $ff | $fw | $ft | 1 | $fp50 | $fp99 | ${frs// / | } |"
  echo "| floor, a process per tenant | $pf | $pw | $pt | $pratio | $pp50 | $pp99 | ${prs// / | } |"
done
log "done in $((SECONDS - started)) s$([ -d "$keep" ] && echo "; failed tenants' stderr in $keep")"
