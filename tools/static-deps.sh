#!/usr/bin/env bash
# Builds the C libraries that Debian cannot give us in a fully static form, from
# Debian's own source packages, and installs them into one prefix:
#
#   libpq.a (+ libpgcommon_shlib.a, libpgport_shlib.a)  postgresql-15, no GSSAPI/LDAP
#   libcurl.a                                            curl, HTTP/HTTPS only, OpenSSL
#   libmariadb.a                                         mariadb (libmariadb/ = Connector/C),
#                                                        every auth plugin built in
#
# Debian's own libpq.a/libcurl.a pull in Kerberos and LDAP -> GnuTLS -> p11-kit (shared
# only), and its libmariadb.a dlopen()s ed25519/caching_sha2_password at run time. OpenSSL,
# zlib and yaml-cpp are taken as Debian ships them (libssl.a, libcrypto.a, libz.a,
# libyaml-cpp.a); cmake/StaticDeps.cmake links all of it (-DTENANTDB_STATIC=ON).
#
# Usage: tools/static-deps.sh [--force]
#   TENANTDB_STATIC_PREFIX  install prefix (default: <repo>/.cache/static-deps)
#   TENANTDB_STATIC_JOBS    parallel make jobs (default: 2)
#
# Cached: the prefix holds a stamp whose content is the key (hash of this script + the
# source package versions, taken from the installed -dev packages); when it matches,
# nothing is done. Needs root (apt-get) on Debian 12; installs its own build deps.
# Sources and logs are kept in <repo>/.cache/static-src/.
set -euo pipefail

SELF=$(readlink -f "${BASH_SOURCE[0]}")
REPO=$(cd "$(dirname "$SELF")/.." && pwd)
PREFIX=${TENANTDB_STATIC_PREFIX:-$REPO/.cache/static-deps}
SRCROOT=$REPO/.cache/static-src
JOBS=${TENANTDB_STATIC_JOBS:-2}
FORCE=0
for arg in "$@"; do
  case $arg in
    --force) FORCE=1 ;;
    -h|--help) sed -n '2,22p' "$SELF" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "static-deps: unknown argument: $arg" >&2; exit 2 ;;
  esac
done

T0=$SECONDS
step() { printf 'static-deps: [%4ss] %s\n' "$((SECONDS - T0))" "$*"; }
die() { printf 'static-deps: ERROR: %s\n' "$*" >&2; exit 1; }
warn() { printf 'static-deps: WARNING: %s\n' "$*" >&2; }

# component -> source package, and the -dev package whose installed version we mirror
SRC_PKGS=(postgresql-15 curl mariadb)
declare -A DEV_PKG=([postgresql-15]=libpq-dev [curl]=libcurl4-openssl-dev [mariadb]=libmariadb-dev)
# Everything the build (and the later static link) needs from Debian.
BUILD_DEPS=(gcc g++ libc6-dev make perl patch dpkg-dev bzip2 xz-utils cmake autoconf automake libtool
            pkg-config binutils libssl-dev zlib1g-dev libyaml-cpp-dev
            libpq-dev libcurl4-openssl-dev libmariadb-dev)
# Files that must exist in a complete prefix.
PREFIX_FILES=(lib/libpq.a lib/libpgcommon_shlib.a lib/libpgport_shlib.a lib/libcurl.a
              lib/libmariadb.a include/postgresql/libpq-fe.h include/curl/curl.h
              include/mariadb/mysql.h)

src_version() {  # installed source version of the -dev package, or "none"
  dpkg-query -W -f='${db:Status-Status} ${source:Version}\n' "${DEV_PKG[$1]}" 2>/dev/null |
    awk '$1 == "installed" { print $2; found = 1; exit } END { if (!found) print "none" }'
}
compute_key() {
  local key parts=() p
  key=$(sha256sum "$SELF" | cut -c1-16)
  for p in "${SRC_PKGS[@]}"; do parts+=("$p=$(src_version "$p")"); done
  echo "$key ${parts[*]} arch=$(dpkg --print-architecture)"
}
prefix_complete() {
  local f
  [[ -f $PREFIX/.stamp && "$(cat "$PREFIX/.stamp")" == "$1" ]] || return 1
  for f in "${PREFIX_FILES[@]}"; do [[ -f $PREFIX/$f ]] || return 1; done
}

KEY=$(compute_key)
if [[ $FORCE == 0 ]] && prefix_complete "$KEY"; then
  step "up to date: $PREFIX ($KEY)"
  exit 0
fi

[[ $(id -u) == 0 ]] || die "must run as root (installs build dependencies with apt-get)"
mkdir -p "$SRCROOT" "$(dirname "$PREFIX")"
PREFIX=$(cd "$(dirname "$PREFIX")" && pwd)/$(basename "$PREFIX")
LOGS=$SRCROOT/logs
mkdir -p "$LOGS"

# One build at a time per tree; a second caller waits, then finds the stamp.
exec 9>"$SRCROOT/.lock"
flock 9
KEY=$(compute_key)
if [[ $FORCE == 0 ]] && prefix_complete "$KEY"; then
  step "up to date (built by a concurrent run): $PREFIX"
  exit 0
fi
renice -n 10 -p $$ >/dev/null 2>&1 || true
rm -rf "$PREFIX".tmp.* "$PREFIX.old"   # left by a killed run

# run LOGNAME CMD...: output to $LOGS/LOGNAME.log, its tail on failure.
run() {
  local log=$LOGS/$1.log; shift
  if ! "$@" >>"$log" 2>&1; then
    printf 'static-deps: FAILED: %s (log: %s), last lines:\n' "$*" "$log" >&2
    tail -n 40 "$log" >&2
    exit 1
  fi
}

STAGE=$PREFIX.tmp.$$
cleanup() { rm -rf "$STAGE"; }
trap cleanup EXIT

# ---------------------------------------------------------------- build dependencies
missing=()
for p in "${BUILD_DEPS[@]}"; do
  [[ $(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true) == installed ]] || missing+=("$p")
done
if ((${#missing[@]})); then
  step "apt-get install ${missing[*]}"
  : >"$LOGS/apt-install.log"
  run apt-install env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update
  run apt-install env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 \
    install -y --no-install-recommends "${missing[@]}"
  KEY=$(compute_key)   # the -dev packages may only now be installed
else
  step "build dependencies present"
fi

# ------------------------------------------ private apt config with deb-src entries
# Derived from the machine's own apt sources (every "deb" entry gets a "deb-src" twin);
# own lists and cache dirs, so the system's apt state is left alone.
APTDIR=$SRCROOT/apt
rm -rf "$APTDIR/sources.list.d"
mkdir -p "$APTDIR/sources.list.d" "$APTDIR/lists/partial" "$APTDIR/cache/archives/partial"
{
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f $f ]] || continue
    sed -n -E 's/^[[:space:]]*deb[[:space:]]+/deb-src /p' "$f"
  done
} >"$APTDIR/sources.list.d/tenantdb-deb-src.list"
for f in /etc/apt/sources.list.d/*.sources; do
  [[ -f $f ]] || continue
  # deb822: keep each enabled stanza whose Types has "deb", as Types: deb-src
  awk 'BEGIN { RS = ""; FS = "\n" }
       { out = ""; isdeb = 0; enabled = 1
         for (i = 1; i <= NF; i++) {
           l = $i; if (l ~ /^#/) continue
           if (tolower(l) ~ /^types:/) { if (l ~ /[ \t]deb([ \t]|$)/) isdeb = 1; l = "Types: deb-src" }
           if (tolower(l) ~ /^enabled:[ \t]*no/) enabled = 0
           out = out l "\n" }
         if (isdeb && enabled) printf "%s\n", out }' "$f"
done >"$APTDIR/sources.list.d/tenantdb-deb-src.sources"
[[ -s $APTDIR/sources.list.d/tenantdb-deb-src.list || -s $APTDIR/sources.list.d/tenantdb-deb-src.sources ]] ||
  die "found no 'deb' entries in /etc/apt/sources.list{,.d} to derive deb-src entries from"
APT=(apt-get -q -o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$APTDIR/sources.list.d"
     -o "Dir::State::Lists=$APTDIR/lists" -o "Dir::Cache=$APTDIR/cache" -o APT::Sandbox::User=root)
APTCACHE=(apt-cache -o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$APTDIR/sources.list.d"
          -o "Dir::State::Lists=$APTDIR/lists" -o "Dir::Cache=$APTDIR/cache")
step "apt-get update (deb-src, private lists in ${APTDIR#"$REPO"/})"
: >"$LOGS/apt-src.log"
# A third-party repository without sources must not stop us: the fetch below says what's missing.
"${APT[@]}" update >>"$LOGS/apt-src.log" 2>&1 || warn "some deb-src indexes failed to update (see $LOGS/apt-src.log)"

# ------------------------------------------------------------------ fetch + unpack
DL=$SRCROOT/dl
mkdir -p "$DL"
declare -A BUILT_VERSION SRCDIR
fetch() {  # fetch SRCPKG: download the wanted version (else the newest that downloads), unpack
  local pkg=$1 want v got="" candidates=()
  want=$(src_version "$pkg")
  mapfile -t candidates < <("${APTCACHE[@]}" showsrc --only-source "$pkg" 2>/dev/null |
                            awk '/^Version:/ { print $2 }' | sort -u -V -r)
  ((${#candidates[@]})) || die "no source package '$pkg' in the deb-src indexes (see $LOGS/apt-src.log)"
  for v in "$want" "${candidates[@]}"; do
    [[ " ${candidates[*]} " == *" $v "* ]] || continue   # also skips "none"
    if (cd "$DL" && "${APT[@]}" source --download-only --only-source "$pkg=$v") >>"$LOGS/fetch-$pkg.log" 2>&1; then
      got=$v; break
    fi
  done
  [[ -n $got ]] || die "could not download any version of source package $pkg (see $LOGS/fetch-$pkg.log)"
  if [[ $got != "$want" ]]; then
    warn "$pkg $want (installed -dev version) is not downloadable from the deb-src mirror; using $got"
  fi
  BUILT_VERSION[$pkg]=$got
  local dsc=$DL/${pkg}_${got#*:}.dsc dir=$SRCROOT/src/$pkg-${got#*:}
  [[ -f $dsc ]] || die "missing $dsc after download"
  rm -rf "$dir"
  mkdir -p "$SRCROOT/src"
  if [[ $pkg == mariadb ]]; then
    unpack_connector_c "$dsc" "$dir"
  else
    run "fetch-$pkg" dpkg-source -x "$dsc" "$dir"
  fi
  SRCDIR[$pkg]=$dir
}
# Only Connector/C (libmariadb/) of the 600 MB server tree is built: unpack just that and
# debian/, then apply the Debian patches that touch it (as dpkg-source would).
# The files' hashes were checked by apt-get against the signed Sources index.
unpack_connector_c() {  # DSC DIR
  local dsc=$1 dir=$2 orig debtar p files
  orig=$(awk '/^Files:/ { f = 1; next } /^[^ ]/ { f = 0 } f { print $3 }' "$dsc" | grep -E '\.orig\.tar\.[a-z0-9]+$')
  debtar=$(awk '/^Files:/ { f = 1; next } /^[^ ]/ { f = 0 } f { print $3 }' "$dsc" | grep -E '\.debian\.tar\.[a-z0-9]+$')
  [[ -n $orig && -n $debtar ]] || die "cannot find the orig/debian tarballs in $dsc"
  mkdir -p "$dir"
  run fetch-mariadb tar -xf "$DL/$orig" -C "$dir" --strip-components=1 --wildcards '*/libmariadb/*'
  run fetch-mariadb tar -xf "$DL/$debtar" -C "$dir"
  [[ -f $dir/libmariadb/CMakeLists.txt ]] || die "no libmariadb/ in $orig"
  [[ -f $dir/debian/patches/series ]] || return 0
  while read -r p _; do
    [[ -z $p || $p == \#* ]] && continue
    files=$(awk '/^\+\+\+ / { sub(/^[^\/]*\//, "", $2); print $2 }' "$dir/debian/patches/$p")
    grep -q '^libmariadb/' <<<"$files" || continue
    if grep -qv '^libmariadb/' <<<"$files"; then
      die "Debian patch $p touches libmariadb/ and other files: teach unpack_connector_c to split it"
    fi
    (cd "$dir" && run fetch-mariadb patch -p1 -i "debian/patches/$p")
  done <"$dir/debian/patches/series"
}
for p in "${SRC_PKGS[@]}"; do
  step "$p: fetch + unpack source ($(src_version "$p"))"
  : >"$LOGS/fetch-$p.log"
  fetch "$p"
done

rm -rf "$STAGE"
mkdir -p "$STAGE/lib" "$STAGE/include"
BUILD=$SRCROOT/build
rm -rf "$BUILD"
mkdir -p "$BUILD"

# Debian-like hardening; paths of the build tree are not recorded in the objects.
CFLAGS_COMMON="-O2 -g -fstack-protector-strong -fstack-clash-protection -fcf-protection -Wformat -Werror=format-security -ffile-prefix-map=$SRCROOT=."
CPPFLAGS_COMMON="-D_FORTIFY_SOURCE=2"

# --------------------------------------------------------------------------- libpq
pg=${SRCDIR[postgresql-15]}
b=$BUILD/libpq
mkdir -p "$b"
: >"$LOGS/libpq.log"
step "libpq: configure (no gssapi/ldap/readline/zlib/icu)"
# --prefix/--sysconfdir as Debian's: they end up as compiled-in defaults (pg_service.conf).
(cd "$b" && run libpq "$pg/configure" --prefix=/usr --sysconfdir=/etc/postgresql-common \
  --with-ssl=openssl --without-gssapi --without-ldap --without-pam --without-readline \
  --without-zlib --without-icu --without-lz4 --without-zstd --without-libxml --without-libxslt \
  --without-systemd --without-selinux --without-llvm --disable-nls --disable-rpath \
  CFLAGS="$CFLAGS_COMMON" CPPFLAGS="$CPPFLAGS_COMMON")
step "libpq: make -j$JOBS (src/interfaces/libpq, src/common, src/port)"
run libpq make -C "$b/src/interfaces/libpq" -j"$JOBS"
install -m 0644 "$b/src/interfaces/libpq/libpq.a" "$b/src/common/libpgcommon_shlib.a" \
  "$b/src/port/libpgport_shlib.a" "$STAGE/lib/"
mkdir -p "$STAGE/include/postgresql/libpq"
install -m 0644 "$pg/src/interfaces/libpq/libpq-fe.h" "$pg/src/interfaces/libpq/libpq-events.h" \
  "$pg/src/include/postgres_ext.h" "$b/src/include/pg_config_ext.h" "$STAGE/include/postgresql/"
install -m 0644 "$pg/src/include/libpq/libpq-fs.h" "$STAGE/include/postgresql/libpq/"

# -------------------------------------------------------------------------- libcurl
cu=${SRCDIR[curl]}
b=$BUILD/curl
mkdir -p "$b"
: >"$LOGS/curl.log"
step "curl: drop Debian's gnutls/nss flavour patches, autoreconf"
# dpkg-source applies every patch; the last two rename the library for the GnuTLS/NSS
# flavours (debian/rules pops them for the OpenSSL build, as we do).
for p in 99_nss.patch 90_gnutls.patch; do
  if grep -qx "$p" "$cu/debian/patches/series"; then
    (cd "$cu" && run curl patch -R -p1 -i "debian/patches/$p")
  fi
done
grep -qE '^lib_LTLIBRARIES = libcurl\.la$' "$cu/lib/Makefile.am" ||
  die "curl: lib/Makefile.am does not build libcurl.la after dropping the flavour patches"
(cd "$cu" && run curl autoreconf -fi)
step "curl: configure (HTTP/HTTPS on OpenSSL only)"
(cd "$b" && run curl "$cu/configure" --prefix=/usr --disable-shared --enable-static \
  --disable-dependency-tracking --enable-threaded-resolver --with-openssl \
  --with-ca-bundle=/etc/ssl/certs/ca-certificates.crt --with-ca-path=/etc/ssl/certs \
  --without-zlib --without-brotli --without-zstd --without-libpsl --without-libidn2 \
  --without-librtmp --without-libssh2 --without-libssh --without-wolfssh --without-nghttp2 \
  --without-ngtcp2 --without-nghttp3 --without-quiche --without-msh3 --without-hyper \
  --without-libgsasl --disable-ldap --disable-ldaps --disable-rtsp --disable-dict \
  --disable-telnet --disable-tftp --disable-pop3 --disable-imap --disable-smb --disable-smtp \
  --disable-gopher --disable-mqtt --disable-ftp --disable-file --disable-manual \
  --disable-ntlm-wb --without-zsh-functions-dir --without-fish-functions-dir \
  CFLAGS="$CFLAGS_COMMON" CPPFLAGS="$CPPFLAGS_COMMON")
grep -q 'Protocols: *HTTP HTTPS$' "$LOGS/curl.log" || die "curl: configure did not end up HTTP/HTTPS-only (see $LOGS/curl.log)"
step "curl: make -j$JOBS (lib/)"
run curl make -C "$b/lib" -j"$JOBS"
run curl make -C "$b/include" install DESTDIR="$b/destdir"
install -m 0644 "$b/lib/.libs/libcurl.a" "$STAGE/lib/"
cp -R "$b/destdir/usr/include/curl" "$STAGE/include/"

# ----------------------------------------------------------- MariaDB Connector/C
cc=${SRCDIR[mariadb]}/libmariadb
b=$BUILD/mariadb
: >"$LOGS/mariadb.log"
step "Connector/C: cmake (OpenSSL, auth plugins built in)"
# Every plugin STATIC or OFF: nothing is ever dlopen()ed from PLUGINDIR.
run mariadb cmake -S "$cc" -B "$b" --no-warn-unused-cli \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=/usr \
  -DCMAKE_C_FLAGS="$CFLAGS_COMMON $CPPFLAGS_COMMON" \
  -DPLUGINDIR=/usr/lib/mariadb/plugin -DDEFAULT_CHARSET=utf8mb4 \
  -DWITH_SSL=OPENSSL -DWITH_EXTERNAL_ZLIB=ON -DWITH_CURL=OFF -DWITH_UNIT_TESTS=OFF \
  -DCLIENT_PLUGIN_DIALOG=STATIC -DCLIENT_PLUGIN_CLIENT_ED25519=STATIC \
  -DCLIENT_PLUGIN_CACHING_SHA2_PASSWORD=STATIC -DCLIENT_PLUGIN_SHA256_PASSWORD=STATIC \
  -DCLIENT_PLUGIN_MYSQL_CLEAR_PASSWORD=STATIC -DCLIENT_PLUGIN_MYSQL_OLD_PASSWORD=STATIC \
  -DCLIENT_PLUGIN_AUTH_GSSAPI_CLIENT=OFF -DCLIENT_PLUGIN_ZSTD=OFF -DCLIENT_PLUGIN_REMOTE_IO=OFF
grep -q -- '-- Dynamic PLUGINS *$' "$LOGS/mariadb.log" ||
  die "Connector/C: some client plugins are still dynamic (see $LOGS/mariadb.log)"
step "Connector/C: build -j$JOBS"
run mariadb cmake --build "$b" -j"$JOBS"
run mariadb env DESTDIR="$b/destdir" cmake --install "$b" --component Development
install -m 0644 "$b/libmariadb/libmariadbclient.a" "$STAGE/lib/libmariadb.a"
cp -R "$b/destdir/usr/include/mariadb" "$STAGE/include/"

# ---------------------------------------------------------------------- checks
step "verify archives (built-in plugins, no gssapi/ldap) + static link smoke test"
: >"$LOGS/verify.log"
defined=$(nm -g --defined-only "$STAGE/lib/libmariadb.a" 2>/dev/null)
for sym in client_ed25519_client_plugin caching_sha2_password_client_plugin \
           sha256_password_client_plugin dialog_client_plugin mysql_client_builtins; do
  grep -qE " [DT] $sym\$" <<<"$defined" || die "libmariadb.a lacks built-in symbol $sym"
done
for a in libpq.a libcurl.a libmariadb.a; do
  undef=$(nm -u "$STAGE/lib/$a" 2>/dev/null)
  if grep -qE ' U (gss_|ldap_|krb5_|gnutls_|nghttp2_|idn2_|psl_)' <<<"$undef"; then
    die "$a references GSSAPI/LDAP/GnuTLS/... symbols"
  fi
done
cat >"$BUILD/smoke.c" <<'EOF'
#include <libpq-fe.h>
#include <curl/curl.h>
#include <mysql.h>
#include <stdio.h>
int main(void) {
  printf("libpq %d, %s, Connector/C %s\n", PQlibVersion(), curl_version(), mysql_get_client_info());
  return 0;
}
EOF
run verify gcc -o "$BUILD/smoke" "$BUILD/smoke.c" -I"$STAGE/include" -I"$STAGE/include/postgresql" \
  -I"$STAGE/include/mariadb" -static -L"$STAGE/lib" -lpq -lpgcommon_shlib -lpgport_shlib -lcurl \
  -lmariadb -lssl -lcrypto -lz -lpthread -ldl -lm
[[ $(readelf -l "$BUILD/smoke") != *INTERP* ]] || die "smoke test binary is not static"
run verify "$BUILD/smoke"

# ---------------------------------------------------------------------- install
{
  echo "# tenantdb static deps, built by tools/static-deps.sh"
  for p in "${SRC_PKGS[@]}"; do echo "$p wanted=$(src_version "$p") built=${BUILT_VERSION[$p]}"; done
  echo "openssl (static, Debian) libssl-dev=$(dpkg-query -W -f='${Version}' libssl-dev)"
  echo "yaml-cpp (static, Debian) libyaml-cpp-dev=$(dpkg-query -W -f='${Version}' libyaml-cpp-dev)"
  echo "zlib (static, Debian) zlib1g-dev=$(dpkg-query -W -f='${Version}' zlib1g-dev)"
  echo "smoke: $(tail -n 1 "$LOGS/verify.log")"
} >"$STAGE/VERSIONS"
KEY=$(compute_key)
printf '%s\n' "$KEY" >"$STAGE/.stamp"
rm -rf "$PREFIX.old"
if [[ -e $PREFIX ]]; then mv "$PREFIX" "$PREFIX.old"; fi
mv "$STAGE" "$PREFIX"
rm -rf "$PREFIX.old"
step "installed into $PREFIX:"
sed 's/^/static-deps:          /' "$PREFIX/VERSIONS"
step "done"
