#!/bin/sh
# Runs inside the image as its default user (build-images --smoke).
set -e
prometheus --version 2>&1 | head -n 1
promtool --version 2>&1 | head -n 1
promtool check config /etc/prometheus/prometheus.yml
id
