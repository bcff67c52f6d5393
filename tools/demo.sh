#!/usr/bin/env bash
# The demo: starts a throwaway local database server (TLS on), provisions a tenant with
# tenantdb-init in local mode, and logs in as that tenant with what it wrote.
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
echo "== done: tenant 'demo' logged in to its own database"
