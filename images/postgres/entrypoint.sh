#!/bin/bash
# Starts one container of the PostgreSQL tier, chosen by PG_ROLE:
#   member   a Patroni member: Patroni initialises the cluster or clones the leader, runs
#            PostgreSQL, holds or follows the leader lock in etcd, promotes, rewinds and rejoins;
#   backup   a pgBackRest agent beside the members: creates the stanza, runs scheduled
#            full/differential backups (pgBackRest finds the primary among the listed members)
#            to every configured repository, and publishes per repository their age, the
#            last run's result and the WAL archive lag as Prometheus metrics
#            (medisys-backup-metrics).
# Passwords arrive as files (never environment values) and never reach a command line.
set -euo pipefail

: "${PG_ROLE:?set PG_ROLE to member or backup}"
: "${PGDATA:=/var/lib/postgresql/data/pgdata}"
: "${STANZA:=main}"
RUNS_DIR=/var/lib/medisys-backup/runs
export PGDATA
CONF=/etc/postgresql/postgresql.conf
TLS_DIR=/etc/postgresql/tls

log() { echo "[medisys-postgres:${PG_ROLE}] $*"; }
die() { log "ERROR: $*"; exit 1; }
need_file() { [ -s "$1" ] || die "$1 is missing or empty: the deployment must upload it"; }

install_private_key() {
    # PostgreSQL refuses a key readable by others; uploaded files are world-readable.
    need_file "$TLS_DIR/server.key"
    install -d -m 0700 /var/lib/postgresql/tls
    install -m 0600 "$TLS_DIR/server.key" /var/lib/postgresql/tls/server.key
}

run_member() {
    : "${PATRONI_CONFIG:?set PATRONI_CONFIG to the Patroni configuration directory}"
    install_private_key
    need_file "$PATRONI_CONFIG/10-patroni.yml"
    need_file "$PATRONI_CONFIG/20-secrets.yml"
    # Patroni stops PostgreSQL (fast shutdown) and releases the leader lock on SIGINT or SIGTERM.
    exec patroni "$PATRONI_CONFIG"
}

backup_age_seconds() {
    # Seconds since the newest backup of the given type (or any type) in repository $2 finished;
    # empty if it has none.
    local type=$1 repo=$2
    pgbackrest --stanza="$STANZA" --output=json info 2>/dev/null | jq -r --arg t "$type" --argjson r "$repo" \
        '[.[0].backup[]? | select(.database."repo-key" == $r) | select($t == "any" or .type == $t) | .timestamp.stop]
         | max // empty | (now - .) | floor'
}

configured_repos() {
    # Every repository pgBackRest is configured with (it lists an unreachable one too).
    local repos
    repos=$(pgbackrest --stanza="$STANZA" --output=json info 2>/dev/null | jq -r '.[0].repo[]?.key' || true)
    echo "${repos:-1}"
}

backup_repo() {
    # One round for repository $1: a full backup when due, else a differential when due. The
    # result goes to RUNS_DIR/repo<N> ("<exit code> <type> <end time>") for the metrics.
    local repo=$1 full_age diff_age type="" rc
    full_age=$(backup_age_seconds full "$repo")
    diff_age=$(backup_age_seconds any "$repo")
    if [ -z "$full_age" ] || [ "$full_age" -ge $((BACKUP_FULL_INTERVAL_HOURS * 3600)) ]; then
        type=full
    elif [ "$diff_age" -ge $((BACKUP_DIFF_INTERVAL_HOURS * 3600)) ]; then
        type=diff
    fi
    [ -n "$type" ] || return 0
    log "$type backup due in repository $repo"
    rc=0
    pgbackrest --stanza="$STANZA" --repo="$repo" --type="$type" backup || rc=$?
    [ "$rc" = 0 ] || log "ERROR: $type backup to repository $repo failed (exit $rc)"
    echo "$rc $type $(date +%s)" > "$RUNS_DIR/.repo$repo" && mv "$RUNS_DIR/.repo$repo" "$RUNS_DIR/repo$repo"
}

write_metrics() {
    medisys-backup-metrics --stanza="$STANZA" --runs="$RUNS_DIR" --output=/var/lib/medisys-backup/www/metrics \
        || log "ERROR: the metrics could not be written"
}

run_backup() {
    : "${BACKUP_FULL_INTERVAL_HOURS:?}" "${BACKUP_DIFF_INTERVAL_HOURS:?}" "${METRICS_LISTEN:?}"
    need_file /etc/pgbackrest/conf.d/cipher.conf
    mkdir -p /var/lib/medisys-backup/www "$RUNS_DIR"
    rm -f /var/lib/medisys-backup/healthy
    busybox httpd -f -p "$METRICS_LISTEN" -h /var/lib/medisys-backup/www &
    log "waiting for a primary among the members"
    local ready=no
    for _ in $(seq 1 90); do
        # pgBackRest's check finds the primary among pg1..pgN and archives a WAL segment through it.
        if pgbackrest --stanza="$STANZA" --log-level-console=warn stanza-create >/dev/null 2>&1 \
            && pgbackrest --stanza="$STANZA" --log-level-console=warn check >/dev/null 2>&1; then
            ready=yes
            break
        fi
        sleep 2
    done
    [ "$ready" = yes ] || { pgbackrest --stanza="$STANZA" check || true; die "no primary answered pgBackRest's check in 180 s"; }
    log "stanza $STANZA ready"
    touch /var/lib/medisys-backup/healthy
    local repo
    while true; do
        for repo in $(configured_repos); do
            backup_repo "$repo"
        done
        write_metrics
        sleep 60 &
        wait $!
    done
}

trap 'exit 0' TERM INT
case "$PG_ROLE" in
    member) run_member ;;
    backup) run_backup ;;
    *) die "PG_ROLE must be member or backup (got '$PG_ROLE')" ;;
esac
