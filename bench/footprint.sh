#!/usr/bin/env bash
# Footprint of tenantdb as shipped: sizes of the static binaries and of what each image
# holds, the init's peak memory while provisioning a tenant (PostgreSQL and MariaDB,
# TLS verified), and the sidecar's resident memory, CPU time and wake-ups while idle.
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
cleanup() {
  [ -n "$sidecar_pid" ] && kill "$sidecar_pid" 2>/dev/null || true
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
port=$(( (RANDOM % 20000) + 30000 ))
"$work/tenantdb-sidecar" --local --store-dir "$work/creds-pg" --output-dir "$work/out" \
  --rotate-every 720h --listen "127.0.0.1:$port" --admin-listen off --log-level warn &
sidecar_pid=$!
sleep 5
field() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$sidecar_pid/status"; }
ticks() { awk '{ print $14 + $15 }' "/proc/$sidecar_pid/stat"; }
switches() { echo $(( $(field voluntary_ctxt_switches) + $(field nonvoluntary_ctxt_switches) )); }
t0=$(ticks) s0=$(switches)
sleep "$idle"
t1=$(ticks) s1=$(switches)
rss=$(field VmRSS) hwm=$(field VmHWM)
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
echo "| sidecar CPU time per idle minute | $(( cpu_ms * 60 / idle )) ms |"
echo "| sidecar wake-ups (context switches) per idle minute | $wakeups_per_min |"
