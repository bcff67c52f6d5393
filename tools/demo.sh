#!/usr/bin/env bash
# The demo: starts a throwaway local database server (TLS on), provisions a tenant with
# tenantdb-init in local mode, and logs in as that tenant with what it wrote. Then it
# starts tenantdb-sidecar with its local proxy, rotating every second, and a client that
# read its data source once (no password in it) keeps opening new connections through the
# proxy across the rotations: none fails.
#   tools/demo.sh [postgres|mariadb]     (default: postgres)
set -euo pipefail
cd "$(dirname "$0")/.."
engine=${1:-postgres}
case "$engine" in
  postgres|pg) which=pg ;;
  mariadb|mysql) which=mariadb ;;
  *) echo "usage: tools/demo.sh [postgres|mariadb]" >&2; exit 2 ;;
esac

tools/install-deps.sh
tools/build.sh >/dev/null

export TENANTDB_TESTDB_DIR="$PWD/build/demo"
creds="$TENANTDB_TESTDB_DIR/credentials-$which"
test/tools/testdb.sh start "$which"
trap 'test/tools/testdb.sh stop "$which"' EXIT

echo "== provisioning tenant 'demo' on the $engine server (connector: $TENANTDB_TESTDB_DIR/$which.connector)"
# The store (standby password and rotation state included) apart from the files a
# workload reads, which get only the workload's keys.
build/init/tenantdb-init --local --connector-file "$TENANTDB_TESTDB_DIR/$which.connector" \
  --tenant demo --namespace default --store-dir "$creds.store" --output-dir "$creds" --timeout 60s

echo "== credential files in $creds (password not shown):"
for f in "$creds"/*; do
  key=$(basename "$f")
  case "$key" in
    password|standbyPassword|dataSource|caCert) printf '  %-16s (%s bytes)\n' "$key" "$(wc -c <"$f")" ;;
    *) printf '  %-16s %s\n' "$key" "$(cat "$f")" ;;
  esac
done

echo "== logging in as the tenant, TLS verified against caCert"
work=$(mktemp -d)
trap 'rm -rf "$work"; test/tools/testdb.sh stop "$which"' EXIT
host=$(cat "$creds/host") port=$(cat "$creds/port") user=$(cat "$creds/user") db=$(cat "$creds/database")
if [ "$which" = pg ]; then
  # The password travels in a pgpass file, never on argv or in the environment.
  (umask 077; printf '%s:%s:%s:%s:%s\n' "$host" "$port" "$db" "$user" "$(cat "$creds/password")" >"$work/pgpass")
  PGPASSFILE="$work/pgpass" psql -X -v ON_ERROR_STOP=1 \
    "host=$host port=$port dbname=$db user=$user sslmode=verify-full sslrootcert=$creds/caCert" \
    -c "CREATE TABLE IF NOT EXISTS greeting (msg text); INSERT INTO greeting VALUES ('hello from tenant demo');" \
    -c "SELECT session_user AS login, current_user AS owner_role, current_database() AS database, (SELECT msg FROM greeting LIMIT 1) AS msg;" \
    -c "SET ROLE NONE" -c "SELECT version AS tls FROM pg_stat_ssl WHERE pid = pg_backend_pid();"
else
  (umask 077; printf '[client]\npassword=%s\n' "$(cat "$creds/password")" >"$work/my.cnf")
  mariadb --defaults-extra-file="$work/my.cnf" -h "$host" -P "$port" -u "$user" "$db" \
    --ssl-ca="$creds/caCert" --ssl-verify-server-cert \
    -e "CREATE TABLE IF NOT EXISTS greeting (msg text); INSERT INTO greeting VALUES ('hello from tenant demo');
        SELECT CURRENT_USER() AS login, DATABASE() AS db, (SELECT msg FROM greeting LIMIT 1) AS msg; SHOW STATUS LIKE 'Ssl_version';"
fi
echo "== the sidecar's local proxy: rotating every second, a client with one fixed data source"
free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 20000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
}
probe_port=$(free_port) proxy_port=$(free_port)
build/sidecar/tenantdb-sidecar --local --store-dir "$creds.store" --output-dir "$creds" \
  --rotate-every 1s --grace 1s --jitter 0 --sync-interval 250ms --listen "127.0.0.1:$probe_port" --admin-listen off \
  --proxy-listen "127.0.0.1:$proxy_port" --log-level warn 2>"$work/sidecar.log" &
sidecar_pid=$!
trap 'kill "$sidecar_pid" 2>/dev/null; wait "$sidecar_pid" 2>/dev/null; rm -rf "$work"; test/tools/testdb.sh stop "$which"' EXIT
for _ in $(seq 100); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$probe_port/readyz")" = 200 ] && break
  sleep 0.1
done
rotations() {
  curl -s "http://127.0.0.1:$probe_port/metrics" | awk '/^tenantdb_rotations_total\{result="rotated"\}/ { print $2 }'
}
if [ "$which" = pg ]; then
  dsn="host=127.0.0.1 port=$proxy_port dbname=demo user=demo sslmode=disable"
  echo "   data source, read once: $dsn"
  query() { psql -X -tA "$dsn" -c "SELECT session_user || ' in ' || current_database() || ': ' || (SELECT msg FROM greeting LIMIT 1)"; }
else
  echo "   data source, read once: mariadb --skip-ssl -h 127.0.0.1 -P $proxy_port -u demo"
  query() {
    mariadb --no-defaults --skip-ssl -h 127.0.0.1 -P "$proxy_port" -u demo -N \
      -e "SELECT CONCAT(CURRENT_USER(), ' in ', DATABASE(), ': ', (SELECT msg FROM greeting LIMIT 1))"
  }
fi
first=$(rotations) ok=0 failed=0 seen=
end=$((SECONDS + 8))
while [ "$SECONDS" -lt "$end" ]; do
  if line=$(query 2>>"$work/client.err"); then
    ok=$((ok + 1))
    case " $seen " in *" ${line%% *} "*) ;; *) seen="$seen ${line%% *}"; echo "   $line" ;; esac
  else
    failed=$((failed + 1))
  fi
  sleep 0.1
done
echo "   $(($(rotations) - first)) rotations, $ok new connections through the proxy, $failed failed"
[ "$failed" -eq 0 ] || { echo "demo: connections through the proxy failed:" >&2; tail -n 5 "$work/client.err" >&2; exit 1; }
echo "== done: tenant 'demo' logged in to its own database, directly and through rotations"
