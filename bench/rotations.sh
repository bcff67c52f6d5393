#!/usr/bin/env bash
# The sidecar's memory over many rotations: does it grow? Per engine and strategy, one
# tenant is provisioned by tenantdb-init in Kubernetes mode against the API stand-in
# (test/support/kube_standin_main.cpp) and one tenantdb-sidecar rotates its password
# ROTATIONS times back to back, each as soon as the previous one finished (POST /rotate,
# then /metrics until tenantdb_rotations_total{result="rotated"} moves; bench/rotate_loop.cpp).
# VmRSS, VmHWM, RssAnon, RssFile (/proc/PID/status), open fds and threads are sampled at
# 0, 100, every 1000 rotations and at the end. The verdict compares the end with the
# sample after the first 1000 rotations (after the first tenth for shorter runs).
#
# The sidecar runs with --rotate-every never, --sync-interval 100ms, --grace 0, its
# files on tmpfs (the manifests use a memory-backed emptyDir) and its logs at info.
# in-place: claim, change, store, then the login check every published change triggers.
# dual: the same plus the retire; the grace period ends on a whole second (the Secret
# records it in RFC 3339 seconds, rounded up so it is never shorter than asked), so dual
# runs at most one rotation per second: its count is DUAL_ROTATIONS (default 300).
# Prints Markdown tables headed by the machine and the binaries it ran.
#   bench/rotations.sh [ROTATIONS [ENGINES [STRATEGIES]]]
#     ROTATIONS   default 10000 (in-place)
#     ENGINES     pg, mariadb or all (default: all, pg first)
#     STRATEGIES  in-place, dual or both (default: both)
set -euo pipefail
n=${1:-10000}
engines=${2:-all}
strategies=${3:-both}
usage() { echo "usage: bench/rotations.sh [ROTATIONS [pg|mariadb|all [in-place|dual|both]]]" >&2; exit 2; }
[[ $n =~ ^[1-9][0-9]*$ ]] || usage
case $engines in pg | mariadb) ;; all) engines="pg mariadb" ;; *) usage ;; esac
case $strategies in in-place | dual) ;; both) strategies="in-place dual" ;; *) usage ;; esac
dual_n=${DUAL_ROTATIONS:-300}
[[ $dual_n =~ ^[1-9][0-9]*$ ]] || { echo "bench/rotations.sh: DUAL_ROTATIONS must be a positive number" >&2; exit 2; }
[ "$dual_n" -gt "$n" ] && dual_n=$n

. "$(dirname "$0")/sidecar-env.sh"
loop=$PWD/$bench_build/rotate_loop
ns=bench

declare -A took
for e in $engines; do
  for s in $strategies; do
    count=$([ "$s" = dual ] && echo "$dual_n" || echo "$n")
    tenant=rot-$run_id-$e-$s
    "$init" --tenant "$tenant" --namespace "$ns" --connector "platform/$e-connector" \
      --kubeconfig "$api_dir/kubeconfig" --strategy "$s" --timeout 60s --log-level error
    port=$(free_port) admin=$(free_port)
    "$sidecar" --tenant "$tenant" --namespace "$ns" --kubeconfig "$api_dir/kubeconfig" \
      --output-dir "$out_root/$e-$s" --strategy "$s" --rotate-every never --grace 0 \
      --sync-interval 100ms --listen "127.0.0.1:$port" --admin-listen "127.0.0.1:$admin" \
      --pod-name bench-0 2>"$work/sidecar-$e-$s.log" &
    pid=$!
    bench_pids+=("$pid")
    wait_ready "$port" "$pid" "$work/sidecar-$e-$s.log"
    echo "bench: $(engine_name "$e"), $s: $count rotations" >&2
    start=$SECONDS
    "$loop" "$pid" "$port" "$admin" "$count" >"$work/$e-$s.samples"
    took[$e-$s]=$((SECONDS - start))
    stop_pid "$pid"
  done
done

mib() { awk -v k="$1" 'BEGIN { printf "%.2f", k / 1024 }'; }
echo
machine_line
echo
echo "Sidecar binary: $binaries. Kubernetes mode against the API stand-in, TLS verify-full to"
echo "the database; --sync-interval 100ms, --grace 0, files on tmpfs. Memory in MiB."
for e in $engines; do
  for s in $strategies; do
    f=$work/$e-$s.samples
    last=$(tail -1 "$f")
    count=${last%% *}
    echo
    echo "$(engine_name "$e"), $s: $count rotations in ${took[$e-$s]} s ($(awk -v n="$count" -v t="${took[$e-$s]}" 'BEGIN { printf "%.0f ms", t * 1000 / n }') per rotation)"
    echo
    echo "| rotations | elapsed s | VmRSS | VmHWM | RssAnon | RssFile | open fds | threads | sidecar CPU s | failed |"
    echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    while read -r r el rss hwm anon file _shmem fds threads cpu failed; do
      echo "| $r | $el | $(mib "$rss") | $(mib "$hwm") | $(mib "$anon") | $(mib "$file") | $fds | $threads | $(awk -v c="$cpu" 'BEGIN { printf "%.1f", c / 1000 }') | $failed |"
    done <"$f"
    # The baseline: after 1000 rotations, or after the first tenth of a shorter run.
    base_at=$([ "$count" -ge 2000 ] && echo 1000 || echo $((count / 10)))
    read -r _ _ rss0 _ anon0 _ _ fds0 threads0 _ _ < <(awk -v b="$base_at" '$1 >= b' "$f" | head -1)
    read -r _ _ rss1 _ anon1 _ _ fds1 threads1 _ failed1 <<<"$last"
    d=$((rss1 - rss0)) da=$((anon1 - anon0))
    verdict="no growth"
    if [ "$d" -gt 512 ] || [ "$fds1" -ne "$fds0" ] || [ "$threads1" -ne "$threads0" ]; then verdict="GROWTH"; fi
    [ "$failed1" -eq 0 ] || verdict="$verdict; $failed1 rotations failed"
    echo
    printf 'Verdict: VmRSS after %d rotations minus after %d: %+d KiB (RssAnon %+d KiB); fds %d -> %d, threads %d -> %d: %s.\n' \
      "$count" "$base_at" "$d" "$da" "$fds0" "$fds1" "$threads0" "$threads1" "$verdict"
  done
done
