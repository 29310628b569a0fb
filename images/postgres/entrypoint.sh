#!/bin/bash
# Starts one member of the PostgreSQL tier, chosen by PG_ROLE:
#   primary  initialises the cluster once (checksums, scram, a replication role), then serves;
#   replica  clones the primary once over a physical slot, then follows it by streaming;
#   backup   a pgBackRest agent beside the primary: creates the stanza, runs scheduled
#            full/differential backups and publishes their age as Prometheus metrics.
# Passwords arrive as files (never environment values) and never reach a command line.
set -euo pipefail

: "${PG_ROLE:?set PG_ROLE to primary, replica or backup}"
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

write_pgpass() {
    need_file "$REPLICATION_PASSWORD_FILE"
    local pass
    pass=$(cat "$REPLICATION_PASSWORD_FILE")
    umask 077
    printf '*:*:*:replicator:%s\n' "${pass//:/\\:}" > "$HOME/.pgpass"
}

init_primary() {
    need_file "$POSTGRES_PASSWORD_FILE"
    need_file "$REPLICATION_PASSWORD_FILE"
    log "initialising a new cluster in $PGDATA"
    initdb -D "$PGDATA" -U postgres --pwfile="$POSTGRES_PASSWORD_FILE" --auth-local=peer \
        --auth-host=scram-sha-256 --data-checksums --encoding=UTF8 --locale=C.UTF-8 >/dev/null
    local socket
    socket=$(mktemp -d)
    pg_ctl -D "$PGDATA" -w -l /tmp/init.log \
        -o "-c listen_addresses='' -c unix_socket_directories=$socket -c archive_mode=off" start >/dev/null
    psql -h "$socket" -U postgres -d postgres -v ON_ERROR_STOP=1 -q <<SQL
\\set pw \`cat $REPLICATION_PASSWORD_FILE\`
CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD :'pw';
SQL
    pg_ctl -D "$PGDATA" -w stop >/dev/null
    log "cluster initialised"
}

run_primary() {
    install_private_key
    [ -s "$PGDATA/PG_VERSION" ] || init_primary
    exec postgres -D "$PGDATA" -c config_file="$CONF"
}

clone_primary() {
    : "${PRIMARY_HOST:?}" "${REPLICATION_SLOT:?}"
    log "waiting for the primary at $PRIMARY_HOST"
    for _ in $(seq 1 90); do
        pg_isready -q -h "$PRIMARY_HOST" -p 5432 && break
        sleep 2
    done
    pg_isready -q -h "$PRIMARY_HOST" -p 5432 || die "primary $PRIMARY_HOST did not become ready in 180 s"
    export PGSSLMODE=verify-full PGSSLROOTCERT="$TLS_DIR/ca.crt"
    log "cloning the primary over slot $REPLICATION_SLOT"
    # The slot survives a replica rebuild; only create it when it does not exist yet.
    if ! pg_basebackup -h "$PRIMARY_HOST" -U replicator -D "$PGDATA" -X stream -c fast \
            --create-slot --slot="$REPLICATION_SLOT" 2>/tmp/basebackup.err; then
        grep -q "already exists" /tmp/basebackup.err || { cat /tmp/basebackup.err; die "base backup failed"; }
        rm -rf "${PGDATA:?}"/*
        pg_basebackup -h "$PRIMARY_HOST" -U replicator -D "$PGDATA" -X stream -c fast --slot="$REPLICATION_SLOT"
    fi
    touch "$PGDATA/standby.signal"
    log "clone complete"
}

run_replica() {
    install_private_key
    write_pgpass
    [ -s "$PGDATA/PG_VERSION" ] || clone_primary
    exec postgres -D "$PGDATA" -c config_file="$CONF"
}

backup_age_seconds() {
    # Seconds since the newest backup of the given type (or any type) finished; empty if none.
    local type=$1
    pgbackrest --stanza="$STANZA" --output=json info 2>/dev/null | jq -r --arg t "$type" \
        '[.[0].backup[]? | select($t == "any" or .type == $t) | .timestamp.stop] | max // empty | (now - .) | floor'
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
            for mount in /var/lib/postgresql/data /var/lib/pgbackrest; do
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
    log "waiting for the primary's socket"
    for _ in $(seq 1 90); do
        pg_isready -q -h /var/run/postgresql && break
        sleep 2
    done
    pg_isready -q -h /var/run/postgresql || die "the primary did not become ready in 180 s"
    pgbackrest --stanza="$STANZA" stanza-create
    pgbackrest --stanza="$STANZA" check
    touch /var/lib/medisys-backup/healthy
    local ok=1 full_age diff_age
    while true; do
        full_age=$(backup_age_seconds full)
        diff_age=$(backup_age_seconds any)
        if [ -z "$full_age" ] || [ "$full_age" -ge $((BACKUP_FULL_INTERVAL_HOURS * 3600)) ]; then
            log "full backup due"
            if pgbackrest --stanza="$STANZA" --type=full backup; then ok=1; else ok=0; fi
        elif [ "$diff_age" -ge $((BACKUP_DIFF_INTERVAL_HOURS * 3600)) ]; then
            log "differential backup due"
            if pgbackrest --stanza="$STANZA" --type=diff backup; then ok=1; else ok=0; fi
        fi
        write_metrics "$ok"
        sleep 60 &
        wait $!
    done
}

trap 'exit 0' TERM INT
case "$PG_ROLE" in
    primary) run_primary ;;
    replica) run_replica ;;
    backup) run_backup ;;
    *) die "PG_ROLE must be primary, replica or backup (got '$PG_ROLE')" ;;
esac
