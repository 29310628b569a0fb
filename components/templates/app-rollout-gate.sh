#!/bin/sh
# One-shot gate between two app servers of a rollout (components/app_servers.py): exits 0 once
# HAProxy's own health checks have put SERVER_ADDRESS in rotation (status UP in the stats CSV)
# on every edge in STATS_URLS (space-separated), so `pulumi up` touches the next server only
# after this one serves through every load balancer.
# Exits 1, naming the server, the edge and its last HAProxy status, when that does not happen in time.
# It never talks to the app server itself: HAProxy's checks reach it over verified TLS (check-ssl).
set -u
deadline=$(( $(date +%s) + ${GATE_TIMEOUT_SECONDS:-90} ))

# in_rotation URL: 0 once SERVER_ADDRESS is UP at that edge before the deadline; sets $status.
in_rotation() {
    status="not listed"
    while [ "$(date +%s)" -lt "$deadline" ]; do
        if csv=$(curl -fsS --max-time 3 "$1;csv;norefresh" 2>/dev/null); then
            # The header line names the columns ("# pxname,svname,...,status,...,addr,...").
            status=$(printf '%s\n' "$csv" | awk -F, -v backend="$BACKEND" -v addr="$SERVER_ADDRESS" '
                NR == 1 { sub(/^# /, ""); for (i = 1; i <= NF; i++) col[$i] = i; next }
                $col["pxname"] == backend && $col["addr"] == addr { print $col["status"]; found = 1 }
                END { if (!found) print "not listed" }')
            [ "$status" = "UP" ] && return 0
        else
            status="stats unreachable at $1"
        fi
        sleep 1
    done
    return 1
}

for url in $STATS_URLS; do
    if ! in_rotation "$url"; then
        echo "$SERVER_NAME ($SERVER_ADDRESS) did not come into rotation in HAProxy backend $BACKEND at $url within ${GATE_TIMEOUT_SECONDS:-90} s; last status: $status" >&2
        exit 1
    fi
    echo "$SERVER_NAME ($SERVER_ADDRESS) is UP in HAProxy backend $BACKEND at $url"
done
exit 0
