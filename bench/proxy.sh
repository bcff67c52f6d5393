#!/usr/bin/env bash
# The sidecar's local proxy side by side with a direct TLS connection (and, on PostgreSQL,
# PgBouncer in session mode in front of the same server), in one run:
#   - PostgreSQL: pgbench select-only and TPC-B-like, 8 clients, 2 threads;
#   - MariaDB: sysbench oltp_point_select and oltp_read_write, 8 threads;
#   - new-connection latency (connect, SELECT 1, close; bench/connect_time.cpp);
#   - anonymous memory per idle proxied connection (200 idle connections held by
#     bench/idle_connections.cpp, the sidecar's RssAnon before and after).
# Direct and PgBouncer connect to the server over TLS verify-full with the tenant's own
# credentials; the proxy does the same upstream, its clients connect on loopback without
# TLS or password. One tenant per engine, provisioned by tenantdb-init against the API
# stand-in; the sidecar rotates never during the run.
#   bench/proxy.sh [SECONDS [pg|mariadb|all]]     (default 20 s per measurement, all)
set -euo pipefail
secs=${1:-20}
engines=${2:-all}
usage() { echo "usage: bench/proxy.sh [SECONDS [pg|mariadb|all]]" >&2; exit 2; }
[[ $secs =~ ^[1-9][0-9]*$ ]] || usage
case $engines in pg | mariadb) ;; all) engines="pg mariadb" ;; *) usage ;; esac

"$(dirname "$0")/../tools/install-deps.sh" --bench
. "$(dirname "$0")/sidecar-env.sh"
connect_time=$PWD/$bench_build/connect_time
idle=$PWD/$bench_build/idle_connections
ns=bench

# value KEY DIR: one credential file.
value() { cat "$2/$1"; }
# rss_anon PID: the process's anonymous resident memory in KiB.
rss_anon() { awk '/^RssAnon:/ { print $2 }' "/proc/$1/status"; }

results=$work/results
: >"$results"
# row ENGINE WHAT TARGET VALUE: one measurement, collected for the tables.
row() { printf '%s|%s|%s|%s\n' "$@" >>"$results"; }

pgbench_run() {  # pgbench_run WHAT TARGET pgbench-args...: records tps and mean latency
  local what=$1 target=$2 out
  shift 2
  out=$(pgbench -n "$@" 2>&1) || { echo "$out" >&2; return 1; }
  row pg "$what tps" "$target" "$(awk '/^tps = / { printf "%.0f", $3 }' <<<"$out")"
  row pg "$what latency ms" "$target" "$(awk '/^latency average = / { print $4 }' <<<"$out")"
}

sysbench_run() {  # sysbench_run WHAT TARGET CONFIG_FILE test: records tps and mean latency
  local what=$1 target=$2 config=$3 test=$4 out
  out=$(sysbench --config-file="$config" "$test" --threads=8 --time="$secs" --report-interval=0 run 2>&1) ||
    { echo "$out" >&2; return 1; }
  row mariadb "$what tps" "$target" "$(awk '/transactions:/ { gsub(/\(/, "", $3); printf "%.0f", $3 }' <<<"$out")"
  row mariadb "$what latency ms" "$target" "$(awk '/avg:/ { print $2; exit }' <<<"$out")"
}

for e in $engines; do
  tenant=px-$run_id-$e
  out=$out_root/$e
  "$init" --tenant "$tenant" --namespace "$ns" --connector "platform/$e-connector" --kubeconfig "$api_dir/kubeconfig" \
    --output-dir "$out" --timeout 60s --log-level error --max-connections none
  port=$(free_port) proxy_port=$(free_port)
  log=$work/$e-sidecar.log
  "$sidecar" --tenant "$tenant" --namespace "$ns" --kubeconfig "$api_dir/kubeconfig" --output-dir "$out" \
    --rotate-every never --listen "127.0.0.1:$port" --admin-listen off \
    --proxy-listen "127.0.0.1:$proxy_port" 2>"$log" &
  pid=$!
  bench_pids+=($pid)
  wait_ready "$port" "$pid" "$log"
  host=$(value host "$out") dbport=$(value port "$out") user=$(value user "$out") db=$(value database "$out")
  echo "bench: $(engine_name "$e"): direct, proxy$([ "$e" = pg ] && echo ", PgBouncer"), ${secs}s each" >&2

  if [ "$e" = pg ]; then
    # The tenant's password for the direct runs in a pgpass file, never argv or env.
    (umask 077; printf '%s:%s:*:%s:%s\n' "$host" "$dbport" "$user" "$(value password "$out")" >"$work/pgpass")
    export PGPASSFILE=$work/pgpass
    direct=(-h "$host" -p "$dbport" -U "$user" "$db")
    proxied=(-h 127.0.0.1 -p "$proxy_port" -U bench bench)
    PGSSLMODE=verify-full PGSSLROOTCERT=$out/caCert pgbench -i -q -s 10 "${direct[@]}" >/dev/null 2>&1

    # PgBouncer, session mode, TLS verify-full upstream with the tenant's credentials in
    # its (private) config; clients trusted on loopback like the proxy's.
    # Its own private directory outside $work: as root PgBouncer runs as postgres, which
    # cannot enter $work.
    pgb=$(mktemp -d) pb_port=$(free_port)
    chmod 700 "$pgb"
    cp "$out/caCert" "$pgb/ca.pem"
    (umask 077
      printf '[databases]\nbench = host=%s port=%s dbname=%s user=%s password=%s\n' \
        "$host" "$dbport" "$db" "$user" "$(value password "$out")"
      printf '[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = %s\nauth_type = trust\nauth_file = %s/users\n' \
        "$pb_port" "$pgb"
      printf 'pool_mode = session\nserver_tls_sslmode = verify-full\nserver_tls_ca_file = %s/ca.pem\n' "$pgb"
      printf 'max_client_conn = 200\ndefault_pool_size = 20\nunix_socket_dir =\nlogfile = %s/log\n' "$pgb"
    ) >"$pgb/pgbouncer.ini"
    echo '"bench" ""' >"$pgb/users"
    pb_user=()
    if [ "$(id -u)" = 0 ]; then chown -R postgres "$pgb"; pb_user=(-u postgres); fi
    pgbouncer "${pb_user[@]}" "$pgb/pgbouncer.ini" 2>"$work/pgbouncer.err" &
    bench_pids+=($!)
    for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$pb_port") 2>/dev/null && break; sleep 0.1; done
    (exec 3<>"/dev/tcp/127.0.0.1/$pb_port") 2>/dev/null ||
      { echo "bench: PgBouncer did not start:" >&2; cat "$work/pgbouncer.err" "$pgb/log" >&2 2>/dev/null; exit 1; }
    bouncer=(-h 127.0.0.1 -p "$pb_port" -U bench bench)

    for what in select-only tpcb; do
      mode=()
      [ "$what" = select-only ] && mode=(-S)
      PGSSLMODE=verify-full PGSSLROOTCERT=$out/caCert pgbench_run "$what" direct "${mode[@]}" -c 8 -j 2 -T "$secs" "${direct[@]}"
      PGSSLMODE=disable pgbench_run "$what" proxy "${mode[@]}" -c 8 -j 2 -T "$secs" "${proxied[@]}"
      PGSSLMODE=disable pgbench_run "$what" pgbouncer "${mode[@]}" -c 8 -j 2 -T "$secs" "${bouncer[@]}"
    done
    unset PGPASSFILE
    rm -rf "$pgb"
  else
    # sysbench 1.0's --mysql-ssl=on loads client-key.pem, client-cert.pem and cacert.pem
    # from its working directory: the tenant's caCert, and a client certificate the test
    # servers' CA signs (the account does not require one; sysbench cannot do without).
    sb=$work/sysbench
    mkdir -p "$sb"
    cp "$out/caCert" "$sb/cacert.pem"
    openssl req -new -newkey rsa:2048 -nodes -subj /CN=bench -keyout "$sb/client-key.pem" -out "$sb/client.csr" 2>/dev/null
    openssl x509 -req -days 1 -in "$sb/client.csr" -CA "$TENANTDB_TESTDB_DIR/ca/ca.pem" \
      -CAkey "$TENANTDB_TESTDB_DIR/ca/ca.key" -set_serial "0x$(openssl rand -hex 8)" -out "$sb/client-cert.pem" 2>/dev/null
    cd "$sb"
    # sysbench reads the password from a private config file, not argv.
    (umask 077; printf 'db-driver=mysql\nmysql-host=%s\nmysql-port=%s\nmysql-user=%s\nmysql-password=%s\nmysql-db=%s\nmysql-ssl=on\ntables=4\ntable-size=10000\n' \
      "$host" "$dbport" "$user" "$(value password "$out")" "$db" >"$work/direct.cfg")
    printf 'db-driver=mysql\nmysql-host=127.0.0.1\nmysql-port=%s\nmysql-user=bench\nmysql-password=\nmysql-db=bench\nmysql-ssl=off\ntables=4\ntable-size=10000\n' \
      "$proxy_port" >"$work/proxy.cfg"
    prep=$(sysbench --config-file="$work/direct.cfg" oltp_read_write prepare 2>&1) || { echo "$prep" >&2; exit 1; }
    for what in oltp_point_select oltp_read_write; do
      sysbench_run "$what" direct "$work/direct.cfg" "$what"
      sysbench_run "$what" proxy "$work/proxy.cfg" "$what"
    done
    cd - >/dev/null
  fi

  rounds=$((secs * 10))
  read -r med p99 < <("$connect_time" "$e" direct "$out" "$rounds")
  row "$e" "new connection ms (median)" direct "$med"
  row "$e" "new connection ms (p99)" direct "$p99"
  read -r med p99 < <("$connect_time" "$e" proxy "$proxy_port" "$rounds")
  row "$e" "new connection ms (median)" proxy "$med"
  row "$e" "new connection ms (p99)" proxy "$p99"

  before=$(rss_anon "$pid")
  hold=$work/hold-$e
  touch "$hold"
  "$idle" "$e" "$proxy_port" 200 "$hold" >"$work/idle-$e.out" &
  idle_pid=$!
  for _ in $(seq 600); do grep -q '^open' "$work/idle-$e.out" 2>/dev/null && break; sleep 0.1; done
  sleep 1
  after=$(rss_anon "$pid")
  rm -f "$hold"
  wait "$idle_pid"
  row "$e" "anonymous KiB per idle connection" proxy "$(((after - before) / 200))"
  row "$e" "sidecar RssAnon KiB, idle, proxy on" proxy "$before"
  stop_pid "$pid"
done

echo
machine_line
echo
echo "Binaries: $binaries. Loopback, TLS verify-full to the server; ${secs}s per throughput run."
for e in $engines; do
  echo
  echo "$(engine_name "$e"):"
  echo
  if [ "$e" = pg ]; then
    echo "| measurement | direct | proxy | PgBouncer | proxy / direct |"
    echo "| --- | --- | --- | --- | --- |"
  else
    echo "| measurement | direct | proxy | proxy / direct |"
    echo "| --- | --- | --- | --- |"
  fi
  awk -F'|' -v e="$e" '$1 == e { if (!($2 in seen)) { order[++n] = $2; seen[$2] = 1 } v[$2, $3] = $4 }
    END {
      for (i = 1; i <= n; i++) {
        k = order[i]; d = v[k, "direct"]; p = v[k, "proxy"]; b = v[k, "pgbouncer"]
        ratio = (d != "" && d + 0 > 0 && p != "") ? sprintf("%.2f", p / d) : ""
        if (e == "pg") printf "| %s | %s | %s | %s | %s |\n", k, d, p, b, ratio
        else printf "| %s | %s | %s | %s |\n", k, d, p, ratio
      }
    }' "$results"
done
