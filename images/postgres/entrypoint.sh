#!/bin/bash
# Starts one container of the PostgreSQL tier, chosen by PG_ROLE:
#   member   a Patroni member: Patroni initialises the cluster or clones the leader, runs
#            PostgreSQL, holds or follows the leader lock in etcd, promotes, rewinds and rejoins;
#   backup   a pgBackRest agent beside the members: creates the stanza, runs scheduled
#            full/differential backups (pgBackRest finds the primary among the listed members)
#            and publishes their age as Prometheus metrics.
# Passwords arrive as files (never environment values) and never reach a command line.
set -euo pipefail

: "${PG_ROLE:?set PG_ROLE to member or backup}"
: "${PGDATA:=/var/lib/postgresql/data/pgdata}"
: "${STANZA:=main}"
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
    # empty if none.
    local type=$1 repo=$2
    pgbackrest --stanza="$STANZA" --repo="$repo" --output=json info 2>/dev/null | jq -r --arg t "$type" \
        '[.[0].backup[]? | select($t == "any" or .type == $t) | .timestamp.stop] | max // empty | (now - .) | floor'
}

backup_repo() {
    # A scheduled backup into repository $1 if one is due. A failure (an unreachable offsite
    # server, a host key that does not match the pinned one) is logged as an ERROR naming the
    # repository and recorded in /var/lib/medisys-backup/repo<N>.status ("ok" or "failed <time>"),
    # never skipped: the other repository's backup does not hide it. Returns non-zero on failure.
    local repo=$1 full_age diff_age type=''
    full_age=$(backup_age_seconds full "$repo")
    diff_age=$(backup_age_seconds any "$repo")
    if [ -z "$full_age" ] || [ "$full_age" -ge $((BACKUP_FULL_INTERVAL_HOURS * 3600)) ]; then
        type=full
    elif [ "$diff_age" -ge $((BACKUP_DIFF_INTERVAL_HOURS * 3600)) ]; then
        type=diff
    fi
    [ -n "$type" ] || return 0
    log "$type backup due in repo$repo"
    if pgbackrest --stanza="$STANZA" --repo="$repo" --type="$type" backup; then
        echo ok > /var/lib/medisys-backup/repo"$repo".status
    else
        echo "failed $(date -u +%s)" > /var/lib/medisys-backup/repo"$repo".status
        log "ERROR: $type backup to repo$repo failed (see pgBackRest's message above); it is retried in 60 s"
        return 1
    fi
}

write_metrics() {
    local dir=/var/lib/medisys-backup/www tmp
    tmp=$(mktemp "$dir/.metrics.XXXX")
    {
        echo "# HELP medisys_backup_last_success_timestamp_seconds When the newest backup of each type finished."
        echo "# TYPE medisys_backup_last_success_timestamp_seconds gauge"
        pgbackrest --stanza="$STANZA" --output=json info 2>/dev/null | jq -r --arg s "$STANZA" '
            .[0].backup // [] | group_by(.type)[] | max_by(.timestamp.stop)
            | "medisys_backup_last_success_timestamp_seconds{stanza=\"\($s)\",type=\"\(.type)\"} \(.timestamp.stop)"'
        echo "# HELP medisys_backup_full_interval_seconds The schedule: a full backup is due this often."
        echo "# TYPE medisys_backup_full_interval_seconds gauge"
        echo "medisys_backup_full_interval_seconds{stanza=\"$STANZA\"} $((BACKUP_FULL_INTERVAL_HOURS * 3600))"
        local mount column
        # One family at a time: the text format wants each metric's samples together.
        for column in size avail; do
            echo "# HELP medisys_filesystem_${column}_bytes Volume ${column} in bytes, for the data directory and the repository."
            echo "# TYPE medisys_filesystem_${column}_bytes gauge"
            for mount in /var/lib/postgresql/members/* /var/lib/pgbackrest; do
                echo "medisys_filesystem_${column}_bytes{mount=\"$mount\"} $(df -B1 --output="$column" "$mount" | tail -n 1 | tr -d ' ')"
            done
        done
        echo "# HELP medisys_backup_last_run_success Whether the last scheduled backup run succeeded."
        echo "# TYPE medisys_backup_last_run_success gauge"
        echo "medisys_backup_last_run_success{stanza=\"$STANZA\"} $1"
    } > "$tmp"
    chmod 0644 "$tmp"
    mv "$tmp" "$dir/metrics"
}

run_backup() {
    : "${BACKUP_FULL_INTERVAL_HOURS:?}" "${BACKUP_DIFF_INTERVAL_HOURS:?}" "${METRICS_LISTEN:?}"
    need_file /etc/pgbackrest/conf.d/cipher.conf
    mkdir -p /var/lib/medisys-backup/www
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
    [ "$ready" = yes ] || { pgbackrest --stanza="$STANZA" check || true; die "pgBackRest's check did not pass in 180 s: no primary answered, or a repository (repo2 = offsite) is unreachable or its host key differs (message above)"; }
    log "stanza $STANZA ready"
    touch /var/lib/medisys-backup/healthy
    local ok=1 repo
    while true; do
        ok=1
        for repo in ${BACKUP_REPOS:-1}; do
            backup_repo "$repo" || ok=0
        done
        write_metrics "$ok"
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
