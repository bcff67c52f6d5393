#!/usr/bin/env bash
# Installs what building and testing tenantdb needs on Debian 12, from Debian's packages.
# Safe to run again: apt-get skips what is installed.
#   tools/install-deps.sh           what the build and the tests need
#   tools/install-deps.sh --bench   that, and the peers the benchmarks compare against
set -euo pipefail

bench=0
for arg in "$@"; do
  case $arg in
    --bench) bench=1 ;;
    *) echo "install-deps: unknown argument '$arg' (only --bench)" >&2; exit 2 ;;
  esac
done

packages=(
  build-essential cmake ninja-build pkg-config git ca-certificates openssl
  libpq-dev libmariadb-dev libcurl4-openssl-dev libssl-dev
  rapidjson-dev libboost-dev libyaml-cpp-dev libcli11-dev
  libgtest-dev libgmock-dev
  clang-format     # tools/check-format.sh: the house style (.clang-format) is checked in CI
  # tools/fuzz.sh (run by tools/test.sh): libFuzzer needs clang, and its runtime
  # (libclang_rt.fuzzer-x86_64.a) ships in libclang-rt-14-dev, which clang pulls in only
  # as a recommendation (of libclang-common-14-dev) that --no-install-recommends skips.
  clang libclang-rt-14-dev
  postgresql postgresql-client mariadb-server mariadb-client
  # The proxy's load tests (issue 10) run pgbench and mysqlslap through it: pgbench is in
  # postgresql-15 (also the server the tests run; named so it cannot go missing),
  # mysqlslap in mariadb-client above.
  postgresql-15
  # The Kine-like test client (test/clients/kinelike), built offline in GOPATH mode with
  # the drivers Kine uses: the Go toolchain, pgx v4 and go-sql-driver/mysql.
  golang-go golang-github-jackc-pgx-v4-dev golang-github-go-sql-driver-mysql-dev
  # The Node test client (test/clients/node): Node.js (and npm, added below when missing);
  # its two drivers (pg, mysql2) come from npm, at the versions its package-lock.json pins.
  nodejs
  iproute2 util-linux procps
  libnss-systemd   # the static smoke test's NSS crash case (issue 12, finding 7)
)
# Benchmark-only peers (bench/, with --bench): the proxy is measured side by side with
# PgBouncer (session mode, same upstream), and MySQL/MariaDB with sysbench.
bench_packages=(
  pgbouncer
  sysbench
)
if [ "$bench" -eq 1 ]; then
  packages+=("${bench_packages[@]}")
fi
# Debian's nodejs leaves npm to its own package; NodeSource's nodejs bundles npm and
# conflicts with Debian's npm package, so ask for it only when there is no npm at all.
command -v npm >/dev/null || packages+=(npm)

sudo=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: run as root or install sudo" >&2; exit 1; }
  sudo=(sudo)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # The package servers must not start system-wide database services: tests run their own.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee /usr/sbin/policy-rc.d >/dev/null
    "${sudo[@]}" chmod 755 /usr/sbin/policy-rc.d
    trap '"${sudo[@]}" rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Node's pg and mysql2 for test/clients/node, into its node_modules (ignored by git), at
# the versions its package-lock.json pins (`npm ci` never rewrites the lock file). Skipped
# when they are there already. npm needs its registry: without it this says so in one line
# and goes on; node_clients_dbtest then skips, naming what is missing.
node_client="$(cd "$(dirname "$0")/.." && pwd)/test/clients/node"
node_modules_current() {
  node -e '
    const lock = require(process.argv[1] + "/package-lock.json").packages;
    for (const p of ["pg", "mysql2"]) {
      const want = lock["node_modules/" + p].version;
      if (require(process.argv[1] + "/node_modules/" + p + "/package.json").version !== want) process.exit(1);
    }' "$node_client" 2>/dev/null
}
if ! node_modules_current; then
  if npm ci --prefix "$node_client" --no-audit --no-fund --loglevel=error >/dev/null 2>&1 && node_modules_current; then
    echo "install-deps: installed pg and mysql2 (npm) into $node_client/node_modules"
  else
    echo "install-deps: npm could not install pg and mysql2 into $node_client/node_modules (is its registry reachable?): node_clients_dbtest will skip" >&2
  fi
fi
