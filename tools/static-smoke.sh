#!/usr/bin/env bash
# Proves the static binaries work where the images put them: in an empty root holding
# only the binaries, a CA file, /etc/hosts and an empty /tmp (as the image has, where
# the pod mounts an emptyDir). The static tenantdb-init provisions a tenant
# on each real test server (TLS verified) from inside such a root; exit 0 means it also
# logged in as the tenant. As a user, the chroot happens in a user namespace.
# As root, each engine also runs as a UID without a passwd entry, HOME unset, with an
# nsswitch.conf naming systemd (and its NSS module in the root): nothing may look the
# user up there (issue 12: libpq's home-directory lookup segfaulted the static binary).
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

  # Issue 12: a UID with no passwd entry, HOME unset, and an nsswitch.conf naming a module
  # (systemd) that a static binary loads with dlopen(). Whatever looks the user up crashes
  # there on a host where that module talks to systemd (libpq's home-directory lookup did:
  # a segfault in getpwuid_r); nothing may look it up. systemd finds no such user here, so
  # a last module, "tenantdbtrap", ends the process with exit 86 when it is reached.
  if [ "$(id -u)" -eq 0 ]; then
    nobody_uid=4242
    printf 'passwd: files systemd tenantdbtrap\ngroup: files systemd tenantdbtrap\n' >"$root/etc/nsswitch.conf"
    nss=$(ls /lib/*/libnss_systemd.so.2 /usr/lib/*/libnss_systemd.so.2 2>/dev/null | head -n 1 || true)
    [ -n "$nss" ] || { echo "static-smoke: $which: no libnss_systemd.so.2 on this host (apt-get install libnss-systemd)" >&2; exit 1; }
    # Where the host's dynamic loader finds them, the loader itself included.
    libdir=$root$(dirname "$nss")
    mkdir -p "$libdir"
    for f in "$nss" $(ldd "$nss" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'); do
      cp -L "$f" "$libdir/"
    done
    printf '%s\n' '#include <unistd.h>' \
      'static const char m[] = "static-smoke: a passwd lookup reached the last NSS module\n";' \
      '__attribute__((constructor)) static void trap(void) { (void)!write(2, m, sizeof m - 1); _exit(86); }' \
      >"$root/trap.c"
    gcc -shared -fPIC -o "$libdir/libnss_tenantdbtrap.so.2" "$root/trap.c"
    rm "$root/trap.c"
    mkdir -p "$root/out-nopw"
    chmod 0755 "$root"
    chown -R "$nobody_uid:$nobody_uid" "$root/connector" "$root/out-nopw"
    if ! env -u HOME chroot --userspec="$nobody_uid:$nobody_uid" --groups="$nobody_uid" "$root" \
        /tenantdb-init --local --connector-file /connector --tenant "static-smoke-$which-nopw" \
        --output-dir /out-nopw --timeout 60s; then
      echo "static-smoke: $which: FAILED as UID $nobody_uid without a passwd entry, HOME unset, nsswitch.conf with systemd" >&2
      rm -rf "$root"
      exit 1
    fi
    [ -s "$root/out-nopw/password" ] || { echo "static-smoke: $which: no password file (UID $nobody_uid)" >&2; exit 1; }
    echo "static-smoke: $which: provisioned as UID $nobody_uid without a passwd entry, HOME unset, nsswitch.conf with systemd"
  else
    echo "static-smoke: $which: SKIPPED the run as a UID without a passwd entry (needs root)"
  fi
  rm -rf "$root"
done
echo "static-smoke: both engines provisioned from an empty root"
