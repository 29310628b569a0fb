#!/bin/sh
# Installs the uploaded host key and authorized client key with the modes sshd insists on (an
# upload is world-readable) and runs sshd in the foreground, logging to stderr.
set -eu
UPLOADS=/etc/offsite-sftp
RUNTIME=/run/offsite-sftp
for file in ssh_host_ed25519_key authorized_keys; do
    [ -s "$UPLOADS/$file" ] || { echo "[offsite-sftp] ERROR: $UPLOADS/$file is missing or empty: the deployment must upload it" >&2; exit 1; }
done
umask 077
cp "$UPLOADS/ssh_host_ed25519_key" "$RUNTIME/ssh_host_ed25519_key"
cp "$UPLOADS/authorized_keys" "$RUNTIME/authorized_keys"
/usr/sbin/sshd -t -f /etc/ssh/sshd_config
echo "[offsite-sftp] serving SFTP on :2222 for $(id -un), repository $(pwd)"
exec /usr/sbin/sshd -D -e -f /etc/ssh/sshd_config
