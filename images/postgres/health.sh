#!/bin/bash
# Docker's health check of a container of the PostgreSQL tier (PG_ROLE as in the entrypoint):
#   member  Patroni's REST API answers 200 on /health at the URL given (PostgreSQL runs, in any
#           role), verified against the member's CA;
#   backup  the agent's first `pgbackrest check` passed (stanza ready, every repository reached);
# and in both, when pgbackrest.conf runs pgBackRest's TLS server, that server answers. The
# entrypoint starts a server that exits again within a second; one that keeps failing (an
# unreadable key, a certificate that does not load) makes the container unhealthy.
# Usage: medisys-postgres-health [PATRONI_HEALTH_URL]
set -euo pipefail

case "${PG_ROLE:?}" in
    member) curl -fsS -o /dev/null --cacert /etc/postgresql/tls/ca.crt "${1:?usage: medisys-postgres-health PATRONI_HEALTH_URL}" ;;
    backup) test -f /var/lib/medisys-backup/healthy ;;
    *) echo "PG_ROLE must be member or backup (got '$PG_ROLE')" >&2; exit 1 ;;
esac
if grep -q '^tls-server-address=' /etc/pgbackrest/pgbackrest.conf 2>/dev/null; then
    # An aliveness check of the server at its configured address (no client certificate needed).
    pgbackrest server-ping --io-timeout=1 --log-level-console=off --log-level-stderr=error
fi
