#!/usr/bin/env bash
# Builds fully static tenantdb-init and tenantdb-sidecar into ${BUILD_DIR:-build-static}:
# the static libpq/libcurl/Connector/C (cached by tools/static-deps.sh), then the two
# binaries with -static, each checked by tools/check-static.sh. The Dockerfiles run this.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/static-deps.sh
BUILD_DIR=${BUILD_DIR:-build-static} tools/build.sh -DTENANTDB_STATIC=ON -DTENANTDB_BUILD_TESTS=OFF
build_dir=${BUILD_DIR:-build-static}
tools/check-static.sh "$build_dir/init/tenantdb-init" "$build_dir/sidecar/tenantdb-sidecar"
