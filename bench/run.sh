#!/usr/bin/env bash
# Every benchmark of bench/, one after the other, with their defaults: footprint, provisioning
# latency against the floor, 1,000 tenants at 20-way concurrency, the sidecar over 10,000
# rotations, rotation latency across three replicas, API requests of an idle sidecar, and the local proxy against direct
# connections and PgBouncer. Each prints its own tables headed
# by the machine. About an hour on 2 cores (PostgreSQL's 10,000 rotations are most of it).
#   bench/run.sh            all of them
#   bench/run.sh quick      the same scripts with small counts, to check they run
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ ${1:-} == quick ]]; then
  bench/footprint.sh 5
  bench/provision.sh 5
  bench/scale.sh 40 4
  DUAL_ROTATIONS=5 bench/rotations.sh 50
  SYNC_INTERVALS=1s bench/rotation-latency.sh 3
  bench/api-load.sh 10
  bench/proxy.sh 2
else
  bench/footprint.sh
  bench/provision.sh
  bench/scale.sh
  bench/rotations.sh
  bench/rotation-latency.sh
  bench/api-load.sh
  bench/proxy.sh
fi
