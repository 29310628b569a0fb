#!/bin/bash
# Starts one container of the PostgreSQL tier, chosen by PG_ROLE:
#   member   a Patroni member: Patroni initialises the cluster or clones the leader, runs
#            PostgreSQL, holds or follows the leader lock in etcd, promotes, rewinds and rejoins;
#            beside it pgBackRest's TLS server, through which the repository host backs it up;
#   backup   the pgBackRest repository host: runs pgBackRest's TLS server (the members push
#            their WAL through it), creates the stanza, runs scheduled full/differential backups
#            (pgBackRest finds the primary among the members it reaches over TLS) to every
#            configured repository, and publishes per repository their age, the last run's
#            result and the WAL archive lag as Prometheus metrics (medisys-backup-metrics).
# Passwords and keys arrive as files (never environment values) and never reach a command line.
set -euo pipefail

: "${PG_ROLE:?set PG_ROLE to member or backup}"
: "${PGDATA:=/var/lib/postgresql/data/pgdata}"
: "${STANZA:=main}"
export PGDATA
CONF=/etc/postgresql/postgresql.conf
TLS_DIR=/etc/postgresql/tls
PGBACKREST_CONF=/etc/pgbackrest/pgbackrest.conf
# pgBackRest's TLS material as uploaded, and where its keys are installed (components/backups.py).
PGBACKREST_TLS=/etc/pgbackrest/tls
PGBACKREST_KEYS=/var/lib/postgresql/pgbackrest-tls

log() { echo "[medisys-postgres:${PG_ROLE}] $*"; }
die() { log "ERROR: $*"; exit 1; }
need_file() { [ -s "$1" ] || die "$1 is missing or empty: the deployment must upload it"; }

install_private_key() {
    # PostgreSQL refuses a key readable by others; uploaded files are world-readable.
    need_file "$TLS_DIR/server.key"
    install -d -m 0700 /var/lib/postgresql/tls
    install -m 0600 "$TLS_DIR/server.key" /var/lib/postgresql/tls/server.key
}

tls_server_configured() {
    grep -q '^tls-server-address=' "$PGBACKREST_CONF" 2>/dev/null
}

install_pgbackrest_keys() {
    # pgBackRest refuses a key others can read (uploaded files are world-readable): private
    # copies where pgbackrest.conf names them.
    need_file "$PGBACKREST_TLS/server.key"
    need_file "$PGBACKREST_TLS/client.key"
    install -d -m 0700 "$PGBACKREST_KEYS"
    install -m 0600 "$PGBACKREST_TLS/server.key" "$PGBACKREST_TLS/client.key" "$PGBACKREST_KEYS/"
}

supervise_tls_server() {
    # pgBackRest's TLS server (settings in pgbackrest.conf: address, certificates, the client
    # names it lets in). When it exits it is started again a second later, and the health check
    # (medisys-postgres-health) fails while it does not answer; it never takes PostgreSQL down
    # with it: a backup daemon's crash must not become a failover.
    local code
    while true; do
        code=0
        pgbackrest server || code=$?
        log "ERROR: pgBackRest's TLS server exited (code $code); starting it again in 1 s"
        sleep 1
    done
}

start_tls_server() {
    # Only with a TLS server in pgbackrest.conf (the repository-host layout): an older
    # configuration keeps running without one.
    tls_server_configured || return 0
    install_pgbackrest_keys
    supervise_tls_server &
    log "pgBackRest's TLS server supervised (pid $!)"
}

run_member() {
    : "${PATRONI_CONFIG:?set PATRONI_CONFIG to the Patroni configuration directory}"
    install_private_key
    need_file "$PATRONI_CONFIG/10-patroni.yml"
    need_file "$PATRONI_CONFIG/20-secrets.yml"
    start_tls_server
    # Patroni stops PostgreSQL (fast shutdown) and releases the leader lock on SIGINT or SIGTERM.
    # It replaces this shell (tini forwards the stop signal to it); the TLS server's supervisor
    # goes on as its child and ends with the container.
    exec patroni "$PATRONI_CONFIG"
}

backup_age_seconds() {
    # Seconds since the newest backup of the given type (or any type) in repository $2 finished;
    # empty if none.
    local type=$1 repo=$2
    pgbackrest --stanza="$STANZA" --repo="$repo" --output=json info 2>/dev/null | jq -r --arg t "$type" \
        '[.[0].backup[]? | select($t == "any" or .type == $t) | .timestamp.stop] | max // empty | (now - .) | floor'
}

configured_repos() {
    # Without BACKUP_REPOS: every repository pgBackRest is configured with (info lists an
    # unreachable one too).
    local repos
    repos=$(pgbackrest --stanza="$STANZA" --output=json info 2>/dev/null | jq -r '.[0].repo[]?.key' || true)
    echo "${repos:-1}"
}

backup_repo() {
    # A scheduled backup into repository $1 if one is due. A failure (an unreachable offsite
    # server, a host key that does not match the pinned one) is logged as an ERROR naming the
    # repository and recorded, never skipped: the other repository's backup does not hide it.
    # The record, /var/lib/medisys-backup/repo<N>.status, is "ok|failed <end time> <exit code>
    # <type>" (medisys-backup-metrics reads it; "ok" or "failed <time>" alone is read too).
    # Returns non-zero on failure.
    local repo=$1 full_age diff_age type='' rc=0
    full_age=$(backup_age_seconds full "$repo")
    diff_age=$(backup_age_seconds any "$repo")
    if [ -z "$full_age" ] || [ "$full_age" -ge $((BACKUP_FULL_INTERVAL_HOURS * 3600)) ]; then
        type=full
    elif [ "$diff_age" -ge $((BACKUP_DIFF_INTERVAL_HOURS * 3600)) ]; then
        type=diff
    fi
    [ -n "$type" ] || return 0
    log "$type backup due in repo$repo"
    pgbackrest --stanza="$STANZA" --repo="$repo" --type="$type" backup || rc=$?
    if [ "$rc" = 0 ]; then
        record_run "$repo" "ok $(date -u +%s) 0 $type"
    else
        record_run "$repo" "failed $(date -u +%s) $rc $type"
        log "ERROR: $type backup to repo$repo failed (exit $rc, see pgBackRest's message above); it is retried in 60 s"
        return 1
    fi
}

record_run() {
    local file=/var/lib/medisys-backup/repo$1.status
    echo "$2" > "$file.tmp" && mv "$file.tmp" "$file"
}

write_metrics() {
    # Per repository: status, newest backups, the last run (the .status records), WAL archive lag.
    # The primary's WAL position is read over PostgreSQL's TLS port as the monitoring role
    # (the members' certificates verified against the stack's CA).
    PGPASSFILE=/var/lib/medisys-backup/pgpass PGSSLMODE=verify-full PGSSLROOTCERT="$PGBACKREST_TLS/ca.crt" PGCONNECT_TIMEOUT=5 \
        medisys-backup-metrics --stanza="$STANZA" --runs=/var/lib/medisys-backup --output=/var/lib/medisys-backup/www/metrics \
        ${METRICS_PG_USER:+--user="$METRICS_PG_USER"} || log "ERROR: the metrics could not be written"
}

run_backup() {
    : "${BACKUP_FULL_INTERVAL_HOURS:?}" "${BACKUP_DIFF_INTERVAL_HOURS:?}" "${METRICS_LISTEN:?}"
    need_file /etc/pgbackrest/conf.d/cipher.conf
    mkdir -p /var/lib/medisys-backup/www
    rm -f /var/lib/medisys-backup/healthy
    if [ -f /etc/medisys-backup/pgpass ]; then
        install -m 0600 /etc/medisys-backup/pgpass /var/lib/medisys-backup/pgpass  # libpq ignores a readable one
    fi
    busybox httpd -f -p "$METRICS_LISTEN" -h /var/lib/medisys-backup/www &
    # The members push WAL through it: up before the first check, which waits for that WAL.
    start_tls_server
    log "waiting for a primary among the members"
    local ready=no
    for _ in $(seq 1 90); do
        # pgBackRest's check finds the primary among pg1..pgN (over TLS) and waits until the WAL
        # segment it switches to reaches every repository (pushed back through this host's server).
        if pgbackrest --stanza="$STANZA" --log-level-console=warn stanza-create >/dev/null 2>&1 \
            && pgbackrest --stanza="$STANZA" --log-level-console=warn check >/dev/null 2>&1; then
            ready=yes
            break
        fi
        sleep 2
    done
    [ "$ready" = yes ] || { pgbackrest --stanza="$STANZA" check || true; die "pgBackRest's check did not pass in 180 s: no primary answered (a member's TLS server, its certificate), the members' WAL does not arrive, or a repository (repo2 = offsite) is unreachable or its host key differs (message above)"; }
    log "stanza $STANZA ready"
    touch /var/lib/medisys-backup/healthy
    local repo
    while true; do
        for repo in ${BACKUP_REPOS:-$(configured_repos)}; do
            backup_repo "$repo" || true
        done
        write_metrics
        sleep 60 &
        wait $!
    done
}

main() {
    trap 'exit 0' TERM INT
    case "$PG_ROLE" in
        member) run_member ;;
        backup) run_backup ;;
        *) die "PG_ROLE must be member or backup (got '$PG_ROLE')" ;;
    esac
}

# Sourced (tests/config/test_pgbackrest.py), it only defines the functions.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    main
fi
