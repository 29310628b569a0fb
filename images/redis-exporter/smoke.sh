#!/bin/sh
# Runs inside the image as its default user (build-images --smoke).
set -e
prometheus-redis-exporter --version 2>&1 | head -n 1
id
