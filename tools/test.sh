#!/usr/bin/env bash
# The test command: installs dependencies, builds, and runs every test (unit tests and
# integration tests against real PostgreSQL and MariaDB servers that CTest starts).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
tools/build.sh
ctest --test-dir "${BUILD_DIR:-build}" --output-on-failure -j 2 "$@"
