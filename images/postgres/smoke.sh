#!/bin/sh
# Runs inside the image as its default user (build-images --smoke).
set -e
postgres --version
pg_ctl --version
pgbackrest version
test -f "$(pg_config --pkglibdir 2>/dev/null || echo /usr/lib/postgresql/17/lib)/pg_stat_statements.so"
echo "pg_stat_statements: present"
ls -ld /var/lib/postgresql/data /var/run/postgresql /var/lib/pgbackrest /var/log/pgbackrest /etc/pgbackrest
tini --version
patroni --version
patronictl version 2>/dev/null || patronictl --help >/dev/null
python3 -c 'import etcd; import patroni.dcs.etcd3' && echo "patroni etcd3: importable"
curl --version | head -n 1
jq --version
busybox --list | grep -qx httpd && echo "busybox httpd: present"
medisys-backup-metrics --help >/dev/null && echo "medisys-backup-metrics: runs"
test -x /usr/local/bin/medisys-postgres-health && echo "medisys-postgres-health: present"
pgbackrest help server tls-server-auth >/dev/null && echo "pgbackrest server: present"
ls -ld /var/lib/medisys-backup /etc/postgresql/tls
id
