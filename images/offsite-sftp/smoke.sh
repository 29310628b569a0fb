#!/bin/sh
# Runs inside the image as its default user (build-images --smoke).
set -e
/usr/sbin/sshd -V 2>&1 | head -n 1 || true
ls -ld /srv/pgbackrest /run/offsite-sftp /run/sshd
id
