#!/bin/sh
# Runs inside the image as its default user (build-images --smoke).
set -e
prometheus-alertmanager --version 2>&1 | head -n 1
amtool --version 2>&1 | head -n 1
amtool check-config /etc/alertmanager/alertmanager.yml
id
