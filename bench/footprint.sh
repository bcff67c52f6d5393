#!/usr/bin/env bash
# Footprint of tenantdb as shipped: sizes of the static binaries and of what each image
# holds, the init's peak memory while provisioning a tenant (PostgreSQL and MariaDB,
# TLS verified), and the sidecar's resident memory, CPU time and wake-ups while idle.
# Resident memory is split into anonymous (private to the process: heap, stack, data)
# and file-backed (the binary's pages, shared through the page cache with every process
# running the same file), and measured twice: as the binary comes off a fresh write (the
# page cache holds it in large folios, which the kernel may map whole), and paged in on
# demand from a cold page cache (4 KiB at a time, as after eviction).
# Prints a Markdown table headed by the machine it ran on.
#   bench/footprint.sh [IDLE_SECONDS]      (default 60)
set -euo pipefail
cd "$(dirname "$0")/.."
idle=${1:-60}
tools/install-deps.sh
command -v /usr/bin/time >/dev/null || { [ "$(id -u)" -eq 0 ] && apt-get install -y -qq time >/dev/null; }
tools/build-static.sh >/dev/null
build=${BUILD_DIR:-build-static}
work=$(mktemp -d)
export TENANTDB_TESTDB_DIR="$PWD/$build/bench-testdb"
test/tools/testdb.sh start all
sidecar_pid=
cold_pid=
cleanup() {
  [ -n "$sidecar_pid" ] && kill "$sidecar_pid" 2>/dev/null || true
  [ -n "$cold_pid" ] && kill "$cold_pid" 2>/dev/null || true
  test/tools/testdb.sh stop all
  rm -rf "$work"
}
trap cleanup EXIT

for b in init sidecar; do strip -o "$work/tenantdb-$b" "$build/$b/tenantdb-$b"; done
ca=/etc/ssl/certs/ca-certificates.crt
size() { stat -c %s "$1"; }
mib() { awk -v b="$1" 'BEGIN { printf "%.2f MiB", b / 1048576 }'; }
kib_to_mib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }

# Peak RSS of one provisioning run per engine (GNU time's %M is in KiB).
declare -A init_rss
for which in pg mariadb; do
  /usr/bin/time -f %M -o "$work/rss-$which" "$work/tenantdb-init" --local \
    --connector-file "$TENANTDB_TESTDB_DIR/$which.connector" --tenant "bench-footprint-$which" \
    --output-dir "$work/creds-$which" --timeout 60s --log-level warn
  init_rss[$which]=$(cat "$work/rss-$which")
done

# The sidecar idle on the PostgreSQL tenant: scheduled rotation far away, default sync.
# The second one runs a copy of the binary dropped from the page cache first.
mkdir "$work/cold"
cp "$work/tenantdb-sidecar" "$work/cold/tenantdb-sidecar"
sync "$work/cold/tenantdb-sidecar"
dd if="$work/cold/tenantdb-sidecar" iflag=nocache count=0 status=none
port=$(( (RANDOM % 20000) + 30000 ))
sidecar() {
  "$1" --local --store-dir "$work/creds-pg" --output-dir "$2" --rotate-every 720h \
    --listen "127.0.0.1:$3" --admin-listen off --log-level warn &
}
sidecar "$work/tenantdb-sidecar" "$work/out" "$port"
sidecar_pid=$!
sidecar "$work/cold/tenantdb-sidecar" "$work/out-cold" $((port + 1))
cold_pid=$!
sleep 5
field() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
ticks() { awk '{ print $14 + $15 }' "/proc/$sidecar_pid/stat"; }
switches() { echo $(( $(field "$sidecar_pid" voluntary_ctxt_switches) + $(field "$sidecar_pid" nonvoluntary_ctxt_switches) )); }
t0=$(ticks) s0=$(switches)
sleep "$idle"
t1=$(ticks) s1=$(switches)
rss=$(field "$sidecar_pid" VmRSS) hwm=$(field "$sidecar_pid" VmHWM)
anon=$(field "$sidecar_pid" RssAnon) file=$(field "$sidecar_pid" RssFile)
cold_rss=$(field "$cold_pid" VmRSS) cold_hwm=$(field "$cold_pid" VmHWM)
cold_anon=$(field "$cold_pid" RssAnon) cold_file=$(field "$cold_pid" RssFile)
hz=$(getconf CLK_TCK)
cpu_ms=$(( (t1 - t0) * 1000 / hz ))
wakeups_per_min=$(( (s1 - s0) * 60 / idle ))

cpu=$(awk -F: '/model name/ { sub(/^ +/, "", $2); print $2; exit }' /proc/cpuinfo)
echo
echo "Machine: ${cpu:-unknown CPU}, $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(uname -sr), $(date -u +%Y-%m-%d)"
echo
echo "| what | value |"
echo "| --- | --- |"
echo "| tenantdb-init, static, stripped | $(mib "$(size "$work/tenantdb-init")") |"
echo "| tenantdb-sidecar, static, stripped | $(mib "$(size "$work/tenantdb-sidecar")") |"
echo "| init image (binary + CA bundle + passwd/group) | $(mib $(( $(size "$work/tenantdb-init") + $(size "$ca") + 128 ))) |"
echo "| sidecar image (binary + CA bundle + passwd/group) | $(mib $(( $(size "$work/tenantdb-sidecar") + $(size "$ca") + 128 ))) |"
echo "| init peak RSS, PostgreSQL tenant | $(kib_to_mib "${init_rss[pg]}") |"
echo "| init peak RSS, MariaDB tenant | $(kib_to_mib "${init_rss[mariadb]}") |"
echo "| sidecar RSS idle (peak) | $(kib_to_mib "$rss") ($(kib_to_mib "$hwm")) |"
echo "| sidecar RSS idle: anonymous + file-backed | $(kib_to_mib "$anon") + $(kib_to_mib "$file") |"
echo "| sidecar RSS idle (peak), binary paged in on demand | $(kib_to_mib "$cold_rss") ($(kib_to_mib "$cold_hwm")) |"
echo "| sidecar RSS idle, paged in on demand: anonymous + file-backed | $(kib_to_mib "$cold_anon") + $(kib_to_mib "$cold_file") |"
echo "| sidecar CPU time per idle minute | $(( cpu_ms * 60 / idle )) ms |"
echo "| sidecar wake-ups (context switches) per idle minute | $wakeups_per_min |"
