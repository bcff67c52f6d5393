#!/usr/bin/env bash
# Rotation latency across replicas: three tenantdb-sidecar replicas of one tenant
# (distinct --pod-name and output directories, one credentials Secret) against the API
# stand-in (test/support/kube_standin_main.cpp), provisioned by tenantdb-init in
# Kubernetes mode. For each rotation bench/rotation_latency.cpp waits until nothing is in
# flight and every replica holds the Secret's password, waits a random part of the sync
# interval (so rotations meet the followers anywhere in their polling cycle), sends
# POST /rotate to the next replica in turn (the leader) and measures from the decision (the leader's
# "rotation requested" log line, ms resolution) to the new password being
#   - in the Secret (a Kubernetes watch on it; the time the event arrives), and
#   - in each replica's files (inotify on the output directory; the `..data` swap).
# The leader publishes right after its write; the others learn from their watch of the
# Secret (the default; with WATCH=off, from their next read of it, every --sync-interval
# +-10% jitter). Runs with the default interval (5s)
# and a short one (1s); strategy dual with --grace 1s (the retire after it is not timed).
# Prints Markdown tables headed by the machine and the binaries it ran.
#   bench/rotation-latency.sh [ROTATIONS [ENGINES]]   (default 20, all: pg then mariadb)
#   SYNC_INTERVALS="5s 1s" overrides the intervals; WATCH=off polls instead of watching.
set -euo pipefail
n=${1:-20}
engines=${2:-all}
usage() { echo "usage: bench/rotation-latency.sh [ROTATIONS [pg|mariadb|all]]" >&2; exit 2; }
[[ $n =~ ^[1-9][0-9]*$ ]] || usage
case $engines in pg | mariadb) ;; all) engines="pg mariadb" ;; *) usage ;; esac
intervals=${SYNC_INTERVALS:-5s 1s}
watch=${WATCH:-on}

. "$(dirname "$0")/sidecar-env.sh"
measure=$PWD/$bench_build/rotation_latency
ns=bench
replicas=(bench-r1 bench-r2 bench-r3)
# ms DURATION: "5s" or "500ms" in ms.
ms() { case $1 in *ms) echo "${1%ms}" ;; *s) echo $((${1%s} * 1000)) ;; *) echo 0 ;; esac; }

for e in $engines; do
  for sync in $intervals; do
    tenant=lat-$run_id-$e-$sync
    "$init" --tenant "$tenant" --namespace "$ns" --connector "platform/$e-connector" \
      --kubeconfig "$api_dir/kubeconfig" --timeout 60s --log-level error
    args=() pids=()
    for r in "${replicas[@]}"; do
      port=$(free_port) admin=$(free_port)
      out=$out_root/$e-$sync-$r log=$work/$e-$sync-$r.log
      "$sidecar" --tenant "$tenant" --namespace "$ns" --kubeconfig "$api_dir/kubeconfig" \
        --output-dir "$out" --pod-name "$r" --rotate-every never --grace 1s --sync-interval "$sync" \
        --watch "$watch" --listen "127.0.0.1:$port" --admin-listen "127.0.0.1:$admin" 2>"$log" &
      pids+=($!)
      bench_pids+=($!)
      wait_ready "$port" "${pids[-1]}" "$log"
      args+=(--replica "$r,$admin,$out,$log")
    done
    echo "bench: $(engine_name "$e"), --sync-interval $sync: $n rotations" >&2
    start=$SECONDS
    "$measure" --api "$api_url" --ca "$api_dir/ca.pem" --token-file "$api_dir/token" --namespace "$ns" \
      --secret "vc-db-$tenant" --rotations "$n" --spread-ms "$(ms "$sync")" "${args[@]}" >"$work/$e-$sync.lat"
    echo "$((SECONDS - start))" >"$work/$e-$sync.took"
    for p in "${pids[@]}"; do stop_pid "$p"; done
  done
done

# stats FILE COLUMN [FILTER]: "median p99 max" in ms (nearest-rank percentiles) of one
# column of the per-rotation lines (see bench/rotation_latency.cpp).
stats() {
  awk -v c="$2" "${3:-1}"' { print $c }' "$1" | sort -n | awk '{ v[NR] = $1 } END {
    m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    r = int(0.99 * NR); if (r < 0.99 * NR) r++
    printf "%.0f | %.0f | %.0f", m, v[r], v[NR] }'
}
# The leader's and the followers' files, whichever replica led: one value per line.
by_role() {
  awk -v want="$2" '{ for (k = 0; k < 3; k++) { lead = ((NR - 1) % 3 == k); if (lead == want) print $(5 + k) } }' "$1"
}

echo
machine_line
echo
echo "Sidecar binary: $binaries. Three replicas, Kubernetes mode against the API stand-in, --watch $watch,"
echo "strategy dual, rotation by POST /rotate on each replica in turn; ms from the leader's decision."
for e in $engines; do
  for sync in $intervals; do
    f=$work/$e-$sync.lat
    echo
    echo "$(engine_name "$e"), --sync-interval $sync: $(wc -l <"$f") rotations in $(cat "$work/$e-$sync.took") s; POST /rotate to decision: median $(stats "$f" 3 | cut -d'|' -f1| tr -d ' ') ms"
    echo
    echo "| new password in | median | p99 | max |"
    echo "| --- | --- | --- | --- |"
    echo "| the Secret | $(stats "$f" 4) |"
    for k in 0 1 2; do echo "| ${replicas[$k]}'s files | $(stats "$f" $((5 + k))) |"; done
    by_role "$f" 1 >"$work/leader" && by_role "$f" 0 >"$work/follower"
    echo "| the leader's files | $(stats "$work/leader" 1) |"
    echo "| a follower's files | $(stats "$work/follower" 1) |"
    echo "| all three replicas' files | $(stats "$f" 8) |"
  done
done
