#!/usr/bin/env bash
# The test command: installs dependencies, builds, proves the static binaries work in an
# empty root (tools/static-smoke.sh), then runs every test with ctest: unit tests and
# integration tests against real PostgreSQL and MariaDB servers that CTest starts, and the
# reliability and security suite (label `suite`), whose counts end the output in one line.
# Then fuzzes the proxy's parsers briefly (tools/fuzz.sh, 15 s per target; set
# TENANTDB_FUZZ_SECONDS to change it, 0 to skip). Extra arguments go to ctest (e.g. -L
# unit, -L suite).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
tools/check-format.sh
tools/build.sh
if [ "${TENANTDB_SKIP_STATIC:-0}" != 1 ]; then
  tools/static-smoke.sh
fi
status=0
ctest --test-dir "${BUILD_DIR:-build}" --output-on-failure -j 2 "$@" || status=$?
fuzz_seconds=${TENANTDB_FUZZ_SECONDS:-15}
if [ "$fuzz_seconds" != 0 ]; then
  tools/fuzz.sh "$fuzz_seconds" || status=1
fi
summary=${BUILD_DIR:-build}/suite/SUMMARY
if [ -f "$summary" ]; then cat "$summary"; fi
exit "$status"
