#!/bin/sh
# Runs inside the image as its default user (build-images --smoke).
set -e
redis-server --version
redis-cli --version
id
