#!/usr/bin/env bash
# testdb.sh - throwaway PostgreSQL and MariaDB servers for tenantdb's
# integration tests, demo and benchmarks.
#
# Both servers come from the distribution packages, listen only on loopback,
# use their own data directory and port under one state directory, and have
# TLS switched on with plain (non-TLS) TCP refused, so tests exercise the
# same TLS paths the product uses against real servers.
#
# Usage:
#   testdb.sh start   [pg|mariadb|all]   start (idempotent; default: all)
#   testdb.sh stop    [pg|mariadb|all]   fast shutdown (safe when not running)
#   testdb.sh restart [pg|mariadb|all]   stop + start, keeping the data
#   testdb.sh status  [pg|mariadb|all]   exit 0 if all running, 3 otherwise
#
# State directory: ${TENANTDB_TESTDB_DIR:-$PWD/build/testdb}; see the layout
# in the "Paths" section below. Tests should source <state>/servers.env and
# read credentials from the *.connector directories (Kubernetes Secret-volume
# format: one file per key, no trailing newline, mode 0600).
#
# Optional environment:
#   TENANTDB_TESTDB_TIMEOUT  seconds to wait for a server to come up (60)
#   TENANTDB_PG_BINDIR       PostgreSQL bin dir (default: newest
#                            /usr/lib/postgresql/*/bin)
#
# Works as root (CI) and as an ordinary user. As root PostgreSQL runs as the
# `postgres` system user and mariadbd as `mysql`, so every directory above the
# state directory must be searchable by those users. When one is not (a clone in
# root's 0700 home directory), the state moves to /var/tmp/tenantdb-testdb-<hash>
# and the requested path becomes a symlink to it; the script says so.
set -euo pipefail

# Created directories must be traversable by the server users when we run as
# root; secrets get explicit modes below.
umask 022

readonly ADMIN_USER=tenantdb_admin
readonly SUPER_USER=tenantdb_super
# PostgreSQL: NOLOGIN role whose members pg_hba.conf lets into every database
# (tenants get only their own: samerole). Tests grant it to roles they make by hand.
readonly ANY_DB_GROUP=tenantdb_any_database
readonly START_TIMEOUT=${TENANTDB_TESTDB_TIMEOUT:-60}
readonly STOP_TIMEOUT=30
readonly PG_OS_USER=postgres     # used only when running as root
readonly MARIA_OS_USER=mysql     # used only when running as root

IS_ROOT=0
if [[ $EUID -eq 0 ]]; then IS_ROOT=1; fi
readonly IS_ROOT

# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------

log() { printf 'testdb: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
    sed -n '/^# Usage:/,/^# Optional/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
}

# Temporary files/dirs removed on exit, whatever the exit path.
TMP_PATHS=()
cleanup() {
    if ((${#TMP_PATHS[@]})); then rm -rf -- "${TMP_PATHS[@]}"; fi
}
trap cleanup EXIT

# run_as USER CMD...: run CMD as the given system user when we are root
# (PostgreSQL refuses to run as root), otherwise as ourselves. cd / so that
# tools do not complain about an unreadable current directory (e.g. /root).
run_as() {
    local user=$1
    shift
    if ((IS_ROOT)); then
        (cd / && exec setpriv --reuid="$user" --regid="$(id -g "$user")" \
            --init-groups -- "$@")
    else
        "$@"
    fi
}

# give_to USER PATH...: chown to the service user when root (no-op otherwise).
give_to() {
    local user=$1
    shift
    if ((IS_ROOT)); then chown "$user:" "$@"; fi
}

# install_copy USER MODE SRC DEST: copy a file the server must read.
install_copy() {
    local user=$1 mode=$2 src=$3 dest=$4
    cp -f -- "$src" "$dest.tmp"
    chmod "$mode" "$dest.tmp"
    give_to "$user" "$dest.tmp"
    mv -f -- "$dest.tmp" "$dest"
}

# proc_alive PID: true if the process exists and is not a zombie (a server we
# started in this very invocation lingers as a zombie until bash reaps it).
proc_alive() {
    local pid=$1 stat
    kill -0 "$pid" 2>/dev/null || return 1
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ ${stat%% *} != Z ]]
}

random_password() {
    local s=''
    # base64 then keep [A-Za-z0-9]; loop in the (unlikely) case that too many
    # characters were '+' or '/'.
    while ((${#s} < 32)); do
        s+=$(openssl rand -base64 48 | tr -dc 'A-Za-z0-9')
    done
    printf '%s' "${s:0:32}"
}

has_ipv6_loopback() {
    [[ -r /proc/net/if_inet6 ]] &&
        grep -q '^00000000000000000000000000000001 ' /proc/net/if_inet6
}

# port_in_use PORT: something already listens on it (any local address).
port_in_use() {
    local p=$1
    if command -v ss >/dev/null 2>&1 &&
        [[ -n $(ss -ltnH "sport = :$p" 2>/dev/null) ]]; then
        return 0
    fi
    # ss can be unavailable or blocked in some sandboxes: also try to connect.
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null
}

# ensure_port PORTFILE AVOID: print the port recorded in PORTFILE if it is
# free, otherwise pick a random free one in 20000-40000 (not AVOID, the
# other server's port) and record it.
ensure_port() {
    local file=$1 avoid=$2 p='' i
    if [[ -s $file ]]; then p=$(<"$file"); fi
    if [[ $p =~ ^[0-9]+$ ]] && ! port_in_use "$p"; then
        printf '%s' "$p"
        return 0
    fi
    if [[ -n $p ]]; then log "port $p is busy; choosing another"; fi
    for ((i = 0; i < 200; i++)); do
        p=$((20000 + RANDOM % 20001))
        [[ $p == "$avoid" ]] && continue
        if ! port_in_use "$p"; then
            printf '%s' "$p" >"$file"
            printf '%s' "$p"
            return 0
        fi
    done
    die "could not find a free loopback port"
}

read_file_or_empty() {
    if [[ -s $1 ]]; then cat -- "$1"; fi
}

# secret_or_new DIR KEY: the value kept in a connector dir, or a new random
# password. Passwords are re-applied to the server on every start, so the
# connector files are the source of truth and stay valid across restarts.
secret_or_new() {
    local v
    v=$(read_file_or_empty "$1/$2")
    if [[ -z $v ]]; then v=$(random_password); fi
    printf '%s' "$v"
}

# write_connector DIR KEY=VALUE...: Kubernetes Secret-volume layout - one
# file per key, value without trailing newline, files 0600, dir 0700. Each
# file is replaced atomically so readers never see a half-written value.
write_connector() {
    local dir=$1 kv key tmp
    shift
    mkdir -p -- "$dir"
    chmod 0700 "$dir"
    for kv in "$@"; do
        key=${kv%%=*}
        tmp=$(mktemp "$dir/.tmp.XXXXXX")   # mktemp creates it 0600
        printf '%s' "${kv#*=}" >"$tmp"
        mv -f -- "$tmp" "$dir/$key"
    done
}

# new_log_since LOG OFFSET: the part of LOG written after byte OFFSET.
new_log_since() {
    if [[ -r $1 ]]; then tail -c +"$(($2 + 1))" -- "$1"; fi
}

file_size() {
    if [[ -e $1 ]]; then stat -c %s -- "$1"; else echo 0; fi
}

fail_with_log() {
    local what=$1 logfile=$2
    log "error: $what; last 50 lines of $logfile:"
    if [[ -r $logfile ]]; then tail -n 50 -- "$logfile" >&2; fi
    exit 1
}

# --------------------------------------------------------------------------
# Paths
# --------------------------------------------------------------------------
#
# <state>/
#   .lock                   flock for start/stop/restart
#   servers.env             non-secret facts (ports, CA paths, connector dirs, logs)
#   ca/                     ca.pem ca.key server.pem server.key other-ca.pem other-ca.key
#   pg/                     port, data/, log/postgresql.log, unix socket .s.PGSQL.<port>
#   mariadb/                port, data/, log/mariadbd.err, mysql.sock, mariadbd.pid
#   pg.connector/ pg-super.connector/ mariadb.connector/ mariadb-super.connector/
#                           Secret-volume style credentials (one file per key)
# As root, pg/ and mariadb/ belong to postgres and mysql respectively.

# services_can_reach DIR: as root, true if both server users can search DIR and
# every directory above it (as an ordinary user the servers run as us).
services_can_reach() {
    local dir=$1 user
    ((IS_ROOT)) || return 0
    for user in "$PG_OS_USER" "$MARIA_OS_USER"; do
        id -u "$user" >/dev/null 2>&1 || continue   # not installed yet: nothing to check
        run_as "$user" test -x "$dir" || return 1
    done
}

# relocate_if_private: a clone under root's home (mode 0700 on Debian) leaves the
# server users no way to the state directory. Keep the state in a directory they can
# reach, named after the requested path, and leave a symlink at the requested path,
# so every reader of <state>/servers.env and the connectors finds them as usual.
relocate_if_private() {
    local parent alt
    ((IS_ROOT)) || return 0
    [[ -L $STATE_DIR ]] && return 0
    parent=$(dirname -- "$STATE_DIR")
    mkdir -p -- "$parent"
    parent=$(cd -- "$parent" && pwd -P)
    services_can_reach "$parent" && return 0
    alt=/var/tmp/tenantdb-testdb-$(printf '%s' "$parent/$(basename -- "$STATE_DIR")" | sha256sum | cut -c1-12)
    if [[ -d $STATE_DIR ]]; then
        # State of an earlier attempt that could never have started a server.
        rm -rf -- "$alt"
        mv -- "$STATE_DIR" "$alt"
    else
        mkdir -p -- "$alt"
    fi
    chmod 0755 "$alt"
    ln -sfn -- "$alt" "$STATE_DIR"
    log "$parent cannot be reached by the '$PG_OS_USER' and '$MARIA_OS_USER' users (a directory above it is private); keeping the servers' state in $alt (linked from $STATE_DIR)"
}

init_paths() {
    STATE_DIR=${TENANTDB_TESTDB_DIR:-$PWD/build/testdb}
    if [[ $1 == create ]]; then
        relocate_if_private
        mkdir -p -- "$STATE_DIR"
    fi
    if [[ -d $STATE_DIR ]]; then STATE_DIR=$(cd -- "$STATE_DIR" && pwd -P); fi

    CA_DIR=$STATE_DIR/ca
    CA_PEM=$CA_DIR/ca.pem
    OTHER_CA_PEM=$CA_DIR/other-ca.pem
    ENV_FILE=$STATE_DIR/servers.env
    LOCK_FILE=$STATE_DIR/.lock

    PG_DIR=$STATE_DIR/pg                 # also the unix socket directory
    PG_DATA=$PG_DIR/data
    PG_LOG=$PG_DIR/log/postgresql.log
    PG_PORT_FILE=$PG_DIR/port
    PG_CONN=$STATE_DIR/pg.connector
    PG_SUPER_CONN=$STATE_DIR/pg-super.connector

    MARIA_DIR=$STATE_DIR/mariadb
    MARIA_DATA=$MARIA_DIR/data
    MARIA_LOG=$MARIA_DIR/log/mariadbd.err
    MARIA_PORT_FILE=$MARIA_DIR/port
    MARIA_SOCK=$MARIA_DIR/mysql.sock
    MARIA_PID=$MARIA_DIR/mariadbd.pid
    MARIA_INIT_SQL=$MARIA_DIR/init.sql
    MARIA_CONN=$STATE_DIR/mariadb.connector
    MARIA_SUPER_CONN=$STATE_DIR/mariadb-super.connector
}

find_pg_bindir() {
    if [[ -n ${TENANTDB_PG_BINDIR:-} ]]; then
        PG_BIN=$TENANTDB_PG_BINDIR
    else
        PG_BIN=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
        if [[ ! -x $PG_BIN/pg_ctl ]]; then
            local ctl
            ctl=$(command -v pg_ctl) || die "PostgreSQL server binaries not found (set TENANTDB_PG_BINDIR)"
            PG_BIN=$(dirname -- "$ctl")
        fi
    fi
    [[ -x $PG_BIN/initdb && -x $PG_BIN/pg_ctl && -x $PG_BIN/psql ]] ||
        die "no initdb/pg_ctl/psql in $PG_BIN"
}

find_maria_bins() {
    MARIADBD=$(command -v mariadbd || command -v /usr/sbin/mariadbd ||
        command -v mysqld || command -v /usr/sbin/mysqld) ||
        die "mariadbd not found (install mariadb-server)"
    MARIA_INSTALL_DB=$(command -v mariadb-install-db ||
        command -v mysql_install_db) || die "mariadb-install-db not found"
    MARIA_CLIENT=$(command -v mariadb || command -v mysql) ||
        die "mariadb client not found (install mariadb-client)"
}

# The state dir (or a parent) must be searchable by the service user when we
# run as root; fail with a clear message rather than a confusing server error.
prepare_service_dir() {
    local dir=$1 user=$2 sub
    shift 2
    mkdir -p -- "$dir"
    chmod 0700 "$dir"
    for sub in "$@"; do
        mkdir -p -- "$dir/$sub"
        chmod 0700 "$dir/$sub"
    done
    if ((IS_ROOT)); then
        give_to "$user" "$dir"
        for sub in "$@"; do give_to "$user" "$dir/$sub"; done
        run_as "$user" test -w "$dir" ||
            die "user '$user' cannot reach $dir (a parent directory is not searchable by it)"
    fi
    # Unix sockets have a ~107-byte path limit.
    if ((${#dir} > 90)); then
        die "state directory path too long for unix sockets: $dir"
    fi
}

# --------------------------------------------------------------------------
# Certificates: generated once, reused afterwards
# --------------------------------------------------------------------------

# make_ca DIR NAME CN: self-signed CA NAME.pem / NAME.key in DIR.
make_ca() {
    local dir=$1 name=$2 cn=$3
    cat >"$dir/$name.cnf" <<EOF
[req]
distinguished_name = dn
x509_extensions = v3
prompt = no
[dn]
CN = $cn
[v3]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
EOF
    openssl req -x509 -new -newkey rsa:2048 -nodes -sha256 -days 3650 \
        -config "$dir/$name.cnf" -keyout "$dir/$name.key" -out "$dir/$name.pem"
}

ensure_certs() {
    local f missing=0
    for f in ca.pem ca.key server.pem server.key other-ca.pem; do
        [[ -s $CA_DIR/$f ]] || missing=1
    done
    ((missing)) || return 0

    log "generating test CAs and server certificate in $CA_DIR"
    local tmp
    tmp=$(mktemp -d "$STATE_DIR/.ca.XXXXXX")
    TMP_PATHS+=("$tmp")
    if ! (
        set -e
        make_ca "$tmp" ca "tenantdb test CA"
        make_ca "$tmp" other-ca "tenantdb unrelated test CA"
        cat >"$tmp/server.cnf" <<EOF
[req]
distinguished_name = dn
prompt = no
[dn]
CN = localhost
[v3]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid,issuer
subjectAltName = DNS:localhost,IP:127.0.0.1,IP:::1
EOF
        openssl req -new -newkey rsa:2048 -nodes -config "$tmp/server.cnf" \
            -keyout "$tmp/server.key" -out "$tmp/server.csr"
        openssl x509 -req -sha256 -days 3650 -in "$tmp/server.csr" \
            -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" \
            -set_serial "0x$(openssl rand -hex 16)" \
            -extfile "$tmp/server.cnf" -extensions v3 -out "$tmp/server.pem"
    ) >"$tmp/openssl.log" 2>&1; then
        cat "$tmp/openssl.log" >&2
        die "certificate generation failed"
    fi
    mkdir -p -- "$CA_DIR"
    for f in ca.pem server.pem other-ca.pem; do
        chmod 0644 "$tmp/$f"
        mv -f -- "$tmp/$f" "$CA_DIR/$f"
    done
    for f in ca.key server.key other-ca.key; do
        chmod 0600 "$tmp/$f"
        mv -f -- "$tmp/$f" "$CA_DIR/$f"
    done
}

# --------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------

pg_ctl_as() { run_as "$PG_OS_USER" "$PG_BIN/pg_ctl" "$@"; }

pg_is_running() {
    [[ -s $PG_DATA/PG_VERSION ]] &&
        pg_ctl_as status -D "$PG_DATA" >/dev/null 2>&1
}

pg_postmaster_pid() {
    if [[ -r $PG_DATA/postmaster.pid ]]; then head -n 1 -- "$PG_DATA/postmaster.pid"; fi
}

pg_init_cluster() {
    [[ -s $PG_DATA/PG_VERSION ]] && return 0
    log "pg: initialising cluster in $PG_DATA"
    rm -rf -- "$PG_DATA"   # leftovers of an interrupted initdb
    # No bootstrap password: passwords are (re)set over the unix socket on
    # every start, which keeps them in sync with the connector files.
    if ! run_as "$PG_OS_USER" "$PG_BIN/initdb" -D "$PG_DATA" -U "$SUPER_USER" \
        --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C \
        --no-sync >"$PG_DIR/initdb.log" 2>&1; then
        cat "$PG_DIR/initdb.log" >&2
        die "pg: initdb failed"
    fi
    printf "\ninclude 'testdb.conf'\n" >>"$PG_DATA/postgresql.conf"
}

# Rewritten on every start: the port can change, and it self-heals edits.
pg_write_config() {
    local port=$1 listen=127.0.0.1
    if has_ipv6_loopback; then listen+=',::1'; fi

    cat >"$PG_DATA/testdb.conf" <<EOF
# Managed by test/tools/testdb.sh; rewritten on every start.
listen_addresses = '$listen'
port = $port
unix_socket_directories = '$PG_DIR'
unix_socket_permissions = 0700
ssl = on
ssl_cert_file = 'server.crt'
ssl_key_file = 'server.key'
password_encryption = 'scram-sha-256'
# Benchmarks run ~20 concurrent clients, each with a few connections.
max_connections = 300
shared_buffers = 32MB
# Throwaway server: durability is irrelevant, speed is not.
fsync = off
synchronous_commit = off
full_page_writes = off
log_line_prefix = '%m [%p] %q%u@%d '
EOF

    # TCP only via TLS (no plain "host" lines, so non-TLS TCP is rejected);
    # the socket lives in a 0700 directory, so trust there is safe and does
    # not depend on the OS user name (postgres as root, $USER otherwise).
    # Over TCP the admin, the superuser and members of $ANY_DB_GROUP (roles
    # tests make by hand to stand for another admin or a squatter) reach every
    # database; every other role only a database named like a role it is a
    # member of (samerole). A tenant's database is named like its NOLOGIN group
    # role and its logins are members, so a tenant reaches its own database and
    # not postgres, template1 or another tenant's, whatever CONNECT privileges
    # say (issue 11, item 8).
    cat >"$PG_DATA/pg_hba.conf" <<EOF
# Managed by test/tools/testdb.sh; rewritten on every start.
# TYPE  DATABASE  USER            ADDRESS       METHOD
local   all       all                           trust
hostssl all       $ADMIN_USER  127.0.0.1/32  scram-sha-256
hostssl all       $ADMIN_USER  ::1/128       scram-sha-256
hostssl all       $SUPER_USER  127.0.0.1/32  scram-sha-256
hostssl all       $SUPER_USER  ::1/128       scram-sha-256
hostssl all       +$ANY_DB_GROUP  127.0.0.1/32  scram-sha-256
hostssl all       +$ANY_DB_GROUP  ::1/128       scram-sha-256
hostssl samerole  all             127.0.0.1/32  scram-sha-256
hostssl samerole  all             ::1/128       scram-sha-256
EOF
    give_to "$PG_OS_USER" "$PG_DATA/testdb.conf" "$PG_DATA/pg_hba.conf"
    chmod 0600 "$PG_DATA/testdb.conf" "$PG_DATA/pg_hba.conf"

    # PostgreSQL insists that the key is owned by the server user and 0600.
    install_copy "$PG_OS_USER" 0644 "$CA_DIR/server.pem" "$PG_DATA/server.crt"
    install_copy "$PG_OS_USER" 0600 "$CA_DIR/server.key" "$PG_DATA/server.key"
}

# Create/refresh the roles over the unix socket. The admin is deliberately
# NOT a superuser (like a managed cloud database's admin). Passwords go to
# psql on stdin, never on argv.
pg_provision() {
    local port=$1 admin_pw=$2 super_pw=$3
    run_as "$PG_OS_USER" "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 \
        -h "$PG_DIR" -p "$port" -U "$SUPER_USER" -d postgres >/dev/null <<EOF
SET client_min_messages = warning;
DO \$\$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$ADMIN_USER') THEN
    CREATE ROLE $ADMIN_USER;
  END IF;
END
\$\$;
ALTER ROLE $ADMIN_USER WITH LOGIN CREATEDB CREATEROLE NOSUPERUSER NOREPLICATION NOBYPASSRLS PASSWORD '$admin_pw';
DO \$\$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$ANY_DB_GROUP') THEN
    CREATE ROLE $ANY_DB_GROUP NOLOGIN;
  END IF;
END
\$\$;
ALTER ROLE $SUPER_USER WITH PASSWORD '$super_pw';
EOF
}

# pg_tls_login USER PASSWORD PORT: verify-full TLS login over TCP. The
# password is only in the child's environment.
pg_tls_login() {
    PGPASSWORD=$2 PGCONNECT_TIMEOUT=3 "$PG_BIN/psql" -X -w -q -At \
        "host=127.0.0.1 port=$3 user=$1 dbname=postgres sslmode=verify-full sslrootcert=$CA_PEM" \
        -c 'SELECT 1' >/dev/null 2>&1
}

pg_write_connectors() {
    local port=$1 admin_pw=$2 super_pw=$3 ca
    ca=$(<"$CA_PEM")
    write_connector "$PG_CONN" type=postgres host=127.0.0.1 "port=$port" \
        "adminUser=$ADMIN_USER" "adminPassword=$admin_pw" \
        sslMode=verify-full "caCert=$ca"
    write_connector "$PG_SUPER_CONN" type=postgres host=127.0.0.1 "port=$port" \
        "adminUser=$SUPER_USER" "adminPassword=$super_pw" \
        sslMode=verify-full "caCert=$ca"
}

pg_start() {
    find_pg_bindir
    if pg_is_running; then
        log "pg: already running on 127.0.0.1:$(read_file_or_empty "$PG_PORT_FILE")"
        return 0
    fi
    prepare_service_dir "$PG_DIR" "$PG_OS_USER" log
    pg_init_cluster

    local admin_pw super_pw port attempt offset deadline started
    admin_pw=$(secret_or_new "$PG_CONN" adminPassword)
    super_pw=$(secret_or_new "$PG_SUPER_CONN" adminPassword)
    touch "$PG_LOG"
    give_to "$PG_OS_USER" "$PG_LOG"

    for attempt in 1 2 3; do
        port=$(ensure_port "$PG_PORT_FILE" "$(read_file_or_empty "$MARIA_PORT_FILE")")
        pg_write_config "$port"
        pg_write_connectors "$port" "$admin_pw" "$super_pw"
        offset=$(file_size "$PG_LOG")
        started=0
        # 9>&-: the postmaster must not inherit our lock fd, or the next
        # invocation would block on the lock for as long as the server runs.
        if pg_ctl_as start -D "$PG_DATA" -l "$PG_LOG" -w -t "$START_TIMEOUT" \
            -s >/dev/null 9>&-; then
            started=1
        fi
        # Lost a race for the port with another process: pick a new one.
        # PostgreSQL starts even if only one of 127.0.0.1/::1 could be bound,
        # so this is checked on success too.
        if new_log_since "$PG_LOG" "$offset" |
            grep 'Address already in use' >/dev/null; then
            pg_stop_quietly
            if ((attempt < 3)); then
                log "pg: port $port was taken meanwhile; retrying"
                rm -f -- "$PG_PORT_FILE"
                continue
            fi
            fail_with_log "pg: port $port is in use" "$PG_LOG"
        fi
        if ((started)); then break; fi
        pg_stop_quietly
        fail_with_log "pg: server did not start" "$PG_LOG"
    done

    deadline=$((SECONDS + START_TIMEOUT))
    if ! pg_provision "$port" "$admin_pw" "$super_pw"; then
        pg_stop_quietly
        fail_with_log "pg: could not create the test roles" "$PG_LOG"
    fi
    until pg_tls_login "$ADMIN_USER" "$admin_pw" "$port"; do
        if ((SECONDS >= deadline)); then
            pg_stop_quietly
            fail_with_log "pg: no TLS login as $ADMIN_USER within ${START_TIMEOUT}s" "$PG_LOG"
        fi
        sleep 0.5
    done
    log "pg: running on 127.0.0.1:$port (TLS required)"
}

pg_stop_quietly() { pg_stop >/dev/null 2>&1 || true; }

pg_stop() {
    find_pg_bindir
    if ! pg_is_running; then
        log "pg: not running"
        return 0
    fi
    local pid
    pid=$(pg_postmaster_pid)
    # fast = roll back open transactions and disconnect clients, which is
    # exactly what "database restarted mid-operation" tests want.
    if pg_ctl_as stop -D "$PG_DATA" -m fast -w -t "$STOP_TIMEOUT" -s >/dev/null 2>&1 ||
        pg_ctl_as stop -D "$PG_DATA" -m immediate -w -t 10 -s >/dev/null 2>&1; then
        log "pg: stopped"
        return 0
    fi
    # Last resort. pg_ctl made the postmaster a session leader, so its
    # process group holds all backends too.
    if [[ $pid =~ ^[0-9]+$ ]]; then
        log "pg: did not stop in time; killing process group $pid"
        kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
        local i
        for ((i = 0; i < 50; i++)); do proc_alive "$pid" || break; sleep 0.1; done
    fi
    if pg_is_running; then die "pg: could not stop the server"; fi
    log "pg: stopped (killed)"
}

pg_status() {
    find_pg_bindir
    if pg_is_running; then
        printf 'pg: running (pid %s, 127.0.0.1:%s, data %s)\n' \
            "$(pg_postmaster_pid)" "$(read_file_or_empty "$PG_PORT_FILE")" "$PG_DATA"
    else
        printf 'pg: stopped\n'
        return 3
    fi
}

# --------------------------------------------------------------------------
# MariaDB
# --------------------------------------------------------------------------

# maria_pid: print the server pid if it is running (validated against the
# process name so a recycled pid is never signalled).
maria_pid() {
    local pid comm
    [[ -s $MARIA_PID ]] || return 1
    pid=$(<"$MARIA_PID")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    proc_alive "$pid" || return 1
    comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
    [[ $comm == mariadbd || $comm == mysqld ]] || return 1
    printf '%s' "$pid"
}

maria_init_datadir() {
    [[ -f $MARIA_DATA/.testdb-initialized ]] && return 0
    log "mariadb: initialising data directory $MARIA_DATA"
    rm -rf -- "$MARIA_DATA"   # leftovers of an interrupted install
    mkdir -p -- "$MARIA_DATA"
    chmod 0700 "$MARIA_DATA"
    give_to "$MARIA_OS_USER" "$MARIA_DATA"
    local args=(--no-defaults "--datadir=$MARIA_DATA" --skip-test-db
        --skip-name-resolve --auth-root-authentication-method=socket)
    if ((IS_ROOT)); then args+=("--user=$MARIA_OS_USER"); fi
    if ! (cd / && "$MARIA_INSTALL_DB" "${args[@]}") >"$MARIA_DIR/install-db.log" 2>&1; then
        cat "$MARIA_DIR/install-db.log" >&2
        die "mariadb: mariadb-install-db failed"
    fi
    touch "$MARIA_DATA/.testdb-initialized"
}

# SQL run by the server itself at startup (--init-file), so no bootstrap
# login is needed whichever OS user we are; idempotent, and it re-syncs the
# passwords with the connector files. One statement per line.
maria_write_init_sql() {
    local admin_pw=$1 super_pw=$2 u pw
    (
        umask 077
        for u in "$ADMIN_USER:$admin_pw" "$SUPER_USER:$super_pw"; do
            pw=${u#*:}
            u=${u%%:*}
            printf "CREATE USER IF NOT EXISTS '%s'@'%%' IDENTIFIED BY '%s';\n" "$u" "$pw"
            printf "ALTER USER '%s'@'%%' IDENTIFIED BY '%s';\n" "$u" "$pw"
            printf "GRANT ALL PRIVILEGES ON *.* TO '%s'@'%%' WITH GRANT OPTION;\n" "$u"
        done >"$MARIA_INIT_SQL"
    )
    give_to "$MARIA_OS_USER" "$MARIA_INIT_SQL"
}

# maria_tls_login USER PASSWORD PORT: verify-full TLS login over TCP. The
# password goes through a private option file, never argv.
maria_tls_login() {
    local cnf rc=0
    cnf=$(mktemp "$STATE_DIR/.client.XXXXXX")   # 0600
    TMP_PATHS+=("$cnf")
    printf '[client]\nuser=%s\npassword=%s\n' "$1" "$2" >"$cnf"
    "$MARIA_CLIENT" --defaults-file="$cnf" --protocol=TCP --host=127.0.0.1 \
        --port="$3" --ssl --ssl-ca="$CA_PEM" --ssl-verify-server-cert \
        --connect-timeout=3 -N -B -e 'SELECT 1' >/dev/null 2>&1 || rc=$?
    rm -f -- "$cnf"
    return "$rc"
}

maria_write_connectors() {
    local port=$1 admin_pw=$2 super_pw=$3 ca
    ca=$(<"$CA_PEM")
    write_connector "$MARIA_CONN" type=mariadb host=127.0.0.1 "port=$port" \
        "adminUser=$ADMIN_USER" "adminPassword=$admin_pw" \
        tls=verify-full "caCert=$ca"
    write_connector "$MARIA_SUPER_CONN" type=mariadb host=127.0.0.1 "port=$port" \
        "adminUser=$SUPER_USER" "adminPassword=$super_pw" \
        tls=verify-full "caCert=$ca"
}

maria_start() {
    find_maria_bins
    local pid
    if pid=$(maria_pid); then
        log "mariadb: already running on 127.0.0.1:$(read_file_or_empty "$MARIA_PORT_FILE")"
        return 0
    fi
    prepare_service_dir "$MARIA_DIR" "$MARIA_OS_USER" log
    rm -f -- "$MARIA_PID"
    maria_init_datadir

    local admin_pw super_pw port attempt offset deadline
    admin_pw=$(secret_or_new "$MARIA_CONN" adminPassword)
    super_pw=$(secret_or_new "$MARIA_SUPER_CONN" adminPassword)
    maria_write_init_sql "$admin_pw" "$super_pw"
    # mariadbd reads these after dropping privileges to mysql.
    install_copy "$MARIA_OS_USER" 0644 "$CA_PEM" "$MARIA_DIR/ca.pem"
    install_copy "$MARIA_OS_USER" 0644 "$CA_DIR/server.pem" "$MARIA_DIR/server.pem"
    install_copy "$MARIA_OS_USER" 0600 "$CA_DIR/server.key" "$MARIA_DIR/server.key"
    touch "$MARIA_LOG"
    give_to "$MARIA_OS_USER" "$MARIA_LOG"

    for attempt in 1 2 3; do
        port=$(ensure_port "$MARIA_PORT_FILE" "$(read_file_or_empty "$PG_PORT_FILE")")
        maria_write_connectors "$port" "$admin_pw" "$super_pw"
        # --no-defaults: ignore /etc/mysql (the packaged server's socket,
        # pid file, ...). max-connect-errors is raised because tests provoke
        # failed handshakes on purpose and must not get 127.0.0.1 blocked.
        local args=(--no-defaults
            "--datadir=$MARIA_DATA" "--port=$port" --bind-address=127.0.0.1
            "--socket=$MARIA_SOCK" "--pid-file=$MARIA_PID"
            "--log-error=$MARIA_LOG" "--init-file=$MARIA_INIT_SQL"
            "--ssl-ca=$MARIA_DIR/ca.pem" "--ssl-cert=$MARIA_DIR/server.pem"
            "--ssl-key=$MARIA_DIR/server.key" --require-secure-transport=ON
            --skip-name-resolve --max-connections=300 --max-connect-errors=1000000
            --innodb-flush-log-at-trx-commit=0 --innodb-doublewrite=0
            --innodb-buffer-pool-size=64M
            --character-set-server=utf8mb4 --collation-server=utf8mb4_general_ci)
        if ((IS_ROOT)); then args+=("--user=$MARIA_OS_USER"); fi

        offset=$(file_size "$MARIA_LOG")
        # setsid: own session, so terminal signals aimed at the caller do not
        # reach the server. The subshell is not a process-group leader, so
        # setsid execs in place and $! is mariadbd's pid. 9>&-: do not leak
        # the lock fd into the long-lived server.
        (cd / && exec setsid "$MARIADBD" "${args[@]}" </dev/null \
            >>"$MARIA_LOG" 2>&1 9>&-) &
        pid=$!

        deadline=$((SECONDS + START_TIMEOUT))
        until maria_tls_login "$ADMIN_USER" "$admin_pw" "$port"; do
            if ! proc_alive "$pid"; then break; fi
            if ((SECONDS >= deadline)); then
                maria_kill "$pid"
                fail_with_log "mariadb: no TLS login as $ADMIN_USER within ${START_TIMEOUT}s" "$MARIA_LOG"
            fi
            sleep 0.5
        done
        if proc_alive "$pid"; then
            rm -f -- "$MARIA_INIT_SQL"   # has passwords; only needed at boot
            log "mariadb: running on 127.0.0.1:$port (TLS required)"
            return 0
        fi
        wait "$pid" 2>/dev/null || true
        if ((attempt < 3)) && new_log_since "$MARIA_LOG" "$offset" |
            grep 'Address already in use' >/dev/null; then
            log "mariadb: port $port was taken meanwhile; retrying"
            rm -f -- "$MARIA_PORT_FILE"
            continue
        fi
        break
    done
    rm -f -- "$MARIA_INIT_SQL"
    fail_with_log "mariadb: server exited during startup" "$MARIA_LOG"
}

# maria_kill PID: TERM (clean InnoDB shutdown), bounded wait, then KILL the
# whole session (setsid made mariadbd its leader).
maria_kill() {
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
        proc_alive "$pid" || return 0
        sleep 0.1
    done
    log "mariadb: did not stop in ${STOP_TIMEOUT}s; killing"
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        proc_alive "$pid" || return 0
        sleep 0.1
    done
    die "mariadb: could not stop pid $pid"
}

maria_stop() {
    local pid
    if ! pid=$(maria_pid); then
        rm -f -- "$MARIA_PID"
        log "mariadb: not running"
        return 0
    fi
    maria_kill "$pid"
    rm -f -- "$MARIA_PID"
    log "mariadb: stopped"
}

maria_status() {
    local pid
    if pid=$(maria_pid); then
        printf 'mariadb: running (pid %s, 127.0.0.1:%s, data %s)\n' \
            "$pid" "$(read_file_or_empty "$MARIA_PORT_FILE")" "$MARIA_DATA"
    else
        printf 'mariadb: stopped\n'
        return 3
    fi
}

# --------------------------------------------------------------------------
# servers.env: non-secret facts only (no passwords), sourceable by sh/bash.
# Plain KEY=VALUE lines (use `set -a` before sourcing to export them).
# --------------------------------------------------------------------------

write_servers_env() {
    local tmp
    tmp=$(mktemp "$STATE_DIR/.servers.env.XXXXXX")
    TMP_PATHS+=("$tmp")
    {
        printf '# Generated by test/tools/testdb.sh; non-secret facts only.\n'
        if [[ -s $PG_PORT_FILE ]]; then
            printf 'TENANTDB_TEST_PG_PORT=%q\n' "$(<"$PG_PORT_FILE")"
        fi
        if [[ -s $MARIA_PORT_FILE ]]; then
            printf 'TENANTDB_TEST_MARIADB_PORT=%q\n' "$(<"$MARIA_PORT_FILE")"
        fi
        printf 'TENANTDB_TEST_CA=%q\n' "$CA_PEM"
        printf 'TENANTDB_TEST_OTHER_CA=%q\n' "$OTHER_CA_PEM"
        if [[ -s $PG_PORT_FILE ]]; then
            printf 'TENANTDB_TEST_PG_CONNECTOR=%q\n' "$PG_CONN"
            printf 'TENANTDB_TEST_PG_SUPER_CONNECTOR=%q\n' "$PG_SUPER_CONN"
        fi
        if [[ -s $MARIA_PORT_FILE ]]; then
            printf 'TENANTDB_TEST_MARIADB_CONNECTOR=%q\n' "$MARIA_CONN"
            printf 'TENANTDB_TEST_MARIADB_SUPER_CONNECTOR=%q\n' "$MARIA_SUPER_CONN"
        fi
        if [[ -s $PG_PORT_FILE ]]; then
            printf 'TENANTDB_TEST_PG_LOG=%q\n' "$PG_LOG"
        fi
        if [[ -s $MARIA_PORT_FILE ]]; then
            printf 'TENANTDB_TEST_MARIADB_LOG=%q\n' "$MARIA_LOG"
        fi
    } >"$tmp"
    chmod 0644 "$tmp"
    mv -f -- "$tmp" "$ENV_FILE"
}

# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------

# Serialise start/stop/restart: two concurrent `start`s must not both run
# initdb or race for the ports.
take_lock() {
    exec 9>>"$LOCK_FILE"
    flock -w 600 9 || die "timed out waiting for $LOCK_FILE"
}

services_for() {
    case $1 in
        all) echo pg mariadb ;;
        pg | postgres | postgresql) echo pg ;;
        mariadb | mysql) echo mariadb ;;
        *) usage >&2; die "unknown server '$1' (expected pg, mariadb or all)" ;;
    esac
}

# run_action SERVICE ACTION: call pg_ACTION or maria_ACTION.
run_action() {
    case $1 in
        pg) "pg_$2" ;;
        mariadb) "maria_$2" ;;
    esac
}

main() {
    local cmd=${1:-} target=${2:-all} svc rc=0
    local -a svcs
    local list
    case $cmd in
        -h | --help | help | '') usage; return 0 ;;
        start | stop | restart | status) ;;
        *) usage >&2; die "unknown command '$cmd'" ;;
    esac
    list=$(services_for "$target")   # exits on an unknown name
    read -r -a svcs <<<"$list"

    case $cmd in
        start | restart)
            init_paths create
            take_lock
            ensure_certs
            for svc in "${svcs[@]}"; do
                if [[ $cmd == restart ]]; then run_action "$svc" stop; fi
                run_action "$svc" start
                # Written after each server so a failure of the second still
                # leaves a valid file for the first.
                write_servers_env
            done
            ;;
        stop)
            init_paths nocreate
            if [[ ! -d $STATE_DIR ]]; then
                log "nothing to stop ($STATE_DIR does not exist)"
                return 0
            fi
            take_lock
            for svc in "${svcs[@]}"; do run_action "$svc" stop; done
            ;;
        status)
            init_paths nocreate
            for svc in "${svcs[@]}"; do run_action "$svc" status || rc=3; done
            return "$rc"
            ;;
    esac
}

main "$@"
