#!/usr/bin/env bash
# Proves the static binaries work where the images put them: in an empty root holding
# only the binaries, a CA file, /etc/hosts and an empty /tmp (as the image has, where
# the pod mounts an emptyDir). The static tenantdb-init provisions a tenant
# on each real test server (TLS verified) from inside such a root; exit 0 means it also
# logged in as the tenant. As a user, the chroot happens in a user namespace.
set -euo pipefail
cd "$(dirname "$0")/.."
chroot_cmd=(chroot)
[ "$(id -u)" -eq 0 ] || chroot_cmd=(unshare --map-root-user chroot)
tools/build-static.sh
build_dir=${BUILD_DIR:-build-static}
export TENANTDB_TESTDB_DIR=${TENANTDB_TESTDB_DIR:-$PWD/$build_dir/testdb}
test/tools/testdb.sh start all
trap 'test/tools/testdb.sh stop all' EXIT

for which in pg mariadb; do
  root=$(mktemp -d)
  mkdir -p "$root/etc/ssl/certs" "$root/connector" "$root/out" "$root/tmp"
  chmod 1777 "$root/tmp"
  cp "$build_dir/init/tenantdb-init" "$build_dir/sidecar/tenantdb-sidecar" "$root/"
  cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
  printf '127.0.0.1 localhost\n::1 localhost\n' >"$root/etc/hosts"
  cp "$TENANTDB_TESTDB_DIR/$which.connector/"* "$root/connector/"
  echo "static-smoke: $which: empty root holds: $(cd "$root" && find . -type f | sort | tr '\n' ' ')"
  "${chroot_cmd[@]}" "$root" /tenantdb-sidecar --help >/dev/null
  if ! "${chroot_cmd[@]}" "$root" /tenantdb-init --local --connector-file /connector --tenant "static-smoke-$which" \
      --output-dir /out --timeout 60s; then
    echo "static-smoke: $which: FAILED" >&2
    rm -rf "$root"
    exit 1
  fi
  [ -s "$root/out/password" ] || { echo "static-smoke: $which: no password file" >&2; exit 1; }
  echo "static-smoke: $which: provisioned and logged in from an empty root"
  rm -rf "$root"
done
echo "static-smoke: both engines provisioned from an empty root"
