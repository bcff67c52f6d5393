# Sourced by bench/rotations.sh and bench/rotation-latency.sh: builds what they run, starts
# the test database servers (private state directory) and the Kubernetes API stand-in,
# stores each engine's connector Secret in it, and cleans all of it up on exit.
#
# Binaries: the static build the images ship (tools/build-static.sh -> build-static/) when
# it builds, else the dynamic build in build/; BENCH_BINARIES=dynamic skips the static
# one. The stand-in (kube-standin, test/support/) always comes from build/.
#
# After sourcing: $init $sidecar $binaries (a description for the tables), $bench_build,
# $work, $api_dir (kubeconfig, ca.pem, token, port of the stand-in), $out_root (tmpfs
# when there is one, like the manifests' memory-backed emptyDir), and the functions
# free_port, wait_ready PORT PID LOG, stop_pid PID, machine_line, engine_name ENGINE.

cd "$(dirname "${BASH_SOURCE[0]}")/.."

bench_build=${BENCH_BUILD_DIR:-build-bench}
if [ ! -f build/CMakeCache.txt ]; then
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake --build build --target kube-standin tenantdb-init tenantdb-sidecar >/dev/null
standin=$PWD/build/test/support/kube-standin

binaries=
if [ "${BENCH_BINARIES:-static}" = static ]; then
  mkdir -p "$bench_build"
  if tools/build-static.sh >/dev/null 2>"$PWD/$bench_build/static-build.log"; then
    binaries="static (build-static/, as the images ship)"
    init=$PWD/build-static/init/tenantdb-init
    sidecar=$PWD/build-static/sidecar/tenantdb-sidecar
  else
    echo "bench: the static build failed (see $bench_build/static-build.log); using the dynamic build" >&2
  fi
fi
if [ -z "$binaries" ]; then
  binaries="dynamic (build/, RelWithDebInfo)"
  init=$PWD/build/init/tenantdb-init
  sidecar=$PWD/build/sidecar/tenantdb-sidecar
fi

cmake -S bench -B "$bench_build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$bench_build" -j "$(nproc)" >/dev/null

work=$(mktemp -d)
out_root=$(mktemp -d -p /dev/shm 2>/dev/null || mktemp -d)
export TENANTDB_TESTDB_DIR="$PWD/$bench_build/testdb"
bench_pids=()
cleanup() {
  for p in "${bench_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${bench_pids[@]}"; do wait "$p" 2>/dev/null || true; done
  test/tools/testdb.sh stop all >&2 || true
  rm -rf "$work" "$out_root"
}
trap cleanup EXIT
test/tools/testdb.sh start all >/dev/null

# The stand-in lets its one user do everything; the sidecars use its kubeconfig.
api_dir=$work/api
"$standin" --dir "$api_dir" --allow-all >/dev/null 2>"$work/kube-standin.log" &
bench_pids+=($!)
for _ in $(seq 100); do [ -s "$api_dir/port" ] && break; sleep 0.1; done
[ -s "$api_dir/port" ] || { echo "bench: kube-standin did not start" >&2; cat "$work/kube-standin.log" >&2; exit 1; }
api_url=https://127.0.0.1:$(cat "$api_dir/port")

# api METHOD PATH [curl args...]: one request to the stand-in as its admin user. The token
# goes to curl through a header file, not argv.
printf 'Authorization: Bearer %s\n' "$(cat "$api_dir/token")" >"$work/auth-header"
api() {
  local method=$1 path=$2
  shift 2
  curl -sS --fail --cacert "$api_dir/ca.pem" -H @"$work/auth-header" -X "$method" "$api_url$path" "$@"
}

# The connector of each test server as the Secret platform/<engine>-connector.
for e in pg mariadb; do
  data=
  for f in "$TENANTDB_TESTDB_DIR/$e.connector"/*; do
    data+="${data:+,}\"$(basename "$f")\":\"$(base64 -w0 <"$f")\""
  done
  printf '{"apiVersion":"v1","kind":"Secret","metadata":{"name":"%s-connector","namespace":"platform"},"type":"Opaque","data":{%s}}' \
    "$e" "$data" | api POST /api/v1/namespaces/platform/secrets -H 'Content-Type: application/json' --data-binary @- >/dev/null
done

# A loopback port nobody listens on (the sidecar fails clearly if it loses the race),
# below the ephemeral range so no outgoing connection holds it.
read -r ephemeral_low _ </proc/sys/net/ipv4/ip_local_port_range
free_port() {
  local p
  while :; do
    p=$((10000 + RANDOM % (ephemeral_low - 10000)))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
}

# wait_ready PORT PID LOG: until the sidecar's /readyz answers 200 (files in place, login
# checked); on failure the end of its log goes to stderr.
wait_ready() {
  for _ in $(seq 1200); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/readyz")" = 200 ] && return 0
    kill -0 "$2" 2>/dev/null || break
    sleep 0.1
  done
  echo "bench: the sidecar on port $1 did not become ready; the end of its log:" >&2
  tail -n 5 "$3" >&2
  return 1
}

stop_pid() {
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

machine_line() {
  local cpu
  cpu=$(awk -F: '/model name/ { sub(/^ +/, "", $2); print $2; exit }' /proc/cpuinfo)
  echo "Machine: ${cpu:-unknown CPU}, $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(uname -sr), $(date -u +%Y-%m-%d)"
}

engine_name() { [ "$1" = pg ] && echo PostgreSQL || echo MariaDB; }

# Every run provisions tenants never seen before, even against a reused data directory.
run_id=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
