#!/bin/sh
# Runs inside the image as its default user (build-images --smoke).
set -e
etcd --version
etcdctl version
ls -ld /var/lib/etcd /etc/etcd/tls
id
