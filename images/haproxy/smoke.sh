#!/bin/sh
# Runs inside the image as its default user (build-images --smoke).
set -e
haproxy -vv | head -n 1
haproxy -vv | grep -i -E 'openssl|lua version|prometheus'
haproxy -c -f /etc/haproxy/haproxy.cfg
curl --version | head -n 1
id
socat -V | head -n 2
awk 'BEGIN { exit 0 }'
