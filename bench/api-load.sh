#!/usr/bin/env bash
# What an idle tenantdb-sidecar costs the Kubernetes API server: requests per tenant per
# idle hour, watching the credentials Secret (the default) and polling it (--watch off),
# against the API stand-in (test/support/kube_standin_main.cpp), which counts every request
# it answers. One tenant provisioned by tenantdb-init, one sidecar with the default
# settings (--sync-interval 5s, --resync-interval 1h); once it is ready and has settled,
# the requests naming its Secret are counted over an idle window of WINDOW seconds and
# extrapolated to an hour. A short window cannot see what happens once an hour, so the
# table adds what the settings schedule beyond it (watching: the hourly resync GET and
# the renewal of the one-hour watch) and says so.
#   bench/api-load.sh [WINDOW_SECONDS [ENGINE]]   (default 120, pg)
# Replica convergence after a rotation (the other target of issue 11, item 10) is
# bench/rotation-latency.sh, whose "a follower's files" row at --sync-interval 5s is it.
set -euo pipefail
window=${1:-120}
engine=${2:-pg}
usage() { echo "usage: bench/api-load.sh [WINDOW_SECONDS [pg|mariadb]]" >&2; exit 2; }
[[ $window =~ ^[1-9][0-9]*$ ]] || usage
case $engine in pg | mariadb) ;; *) usage ;; esac
settle=10

. "$(dirname "$0")/sidecar-env.sh"
ns=bench
standin_pid=${bench_pids[0]}

# requests SECRET: the requests so far that name the Secret (GETs, PUTs and watches).
requests() {
  rm -f "$api_dir/requests"
  kill -USR1 "$standin_pid"
  for _ in $(seq 100); do [ -f "$api_dir/requests" ] && break; sleep 0.05; done
  grep -c -e "/secrets/$1 " -e "metadata.name%3D$1&" "$api_dir/requests" || true
}
# requests_of SECRET KIND: GET (reads of the Secret) or WATCH (watch requests).
requests_of() {
  case $2 in
    GET) grep -c "^GET [^ ]*/secrets/$1 " "$api_dir/requests" || true ;;
    WATCH) grep -c "metadata.name%3D$1&" "$api_dir/requests" || true ;;
  esac
}

rows=()
for mode in on off; do
  tenant=idle-$run_id-$engine-$mode
  secret=vc-db-$tenant
  "$init" --tenant "$tenant" --namespace "$ns" --connector "platform/$engine-connector" \
    --kubeconfig "$api_dir/kubeconfig" --timeout 60s --log-level error
  port=$(free_port) admin=$(free_port) out=$out_root/idle-$mode log=$work/idle-$mode.log
  "$sidecar" --tenant "$tenant" --namespace "$ns" --kubeconfig "$api_dir/kubeconfig" \
    --output-dir "$out" --pod-name idle-$mode --watch "$mode" \
    --listen "127.0.0.1:$port" --admin-listen "127.0.0.1:$admin" 2>"$log" &
  pid=$!
  bench_pids+=($pid)
  wait_ready "$port" "$pid" "$log"
  sleep "$settle"
  echo "bench: --watch $mode: idle for $window s" >&2
  before=$(requests "$secret")
  gets_before=$(requests_of "$secret" GET) watches_before=$(requests_of "$secret" WATCH)
  sleep "$window"
  after=$(requests "$secret")
  gets=$(($(requests_of "$secret" GET) - gets_before)) watches=$(($(requests_of "$secret" WATCH) - watches_before))
  stop_pid "$pid"
  in_window=$((after - before))
  measured=$(awk -v n="$in_window" -v w="$window" 'BEGIN { printf "%.0f", n * 3600 / w }')
  if [ "$mode" = on ]; then
    # One resync GET an hour (--resync-interval 1h) and one watch renewal an hour (the
    # watch's timeoutSeconds is 3600), neither of which a short window sees.
    scheduled=2
    open="1 watch"
  else
    scheduled=0
    open="none"
  fi
  total=$((measured + scheduled))
  rows+=("| --watch $mode | $in_window ($gets GET, $watches watch) | $measured | $scheduled | **$total** | $open |")
done

echo
machine_line
echo
echo "Sidecar binary: $binaries. $(engine_name "$engine") tenant, one sidecar with the default settings"
echo "(--sync-interval 5s, --resync-interval 1h) against the API stand-in, idle (no rotation)"
echo "for $window s after it was ready and had settled for $settle s. Requests naming its Secret."
echo
echo "| sidecar | requests in the window | measured, per hour | scheduled once an hour, beyond the window | per idle hour | held open |"
echo "| --- | --- | --- | --- | --- | --- |"
for r in "${rows[@]}"; do echo "$r"; done
