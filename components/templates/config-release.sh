#!/bin/sh
# One-shot config-release job (components/container.py `config_release_job`): installs the files
# it was given as a release on the volume it shares with a running service, checks the release
# with the service's own tool, and asks the service to reload it, so a config change (or a new
# certificate) never recreates the service's container.
#
#   RELEASE_DIR     the shared volume: releases/<id>/, the `current` link the service reads
#   RELEASE_FILES   "staged-path=name ..." (name relative to the release, e.g. rules/a.yml)
#   CHECK_COMMAND   checks $RELEASE_DIR/current (run with `current` already switched)
#   RELOAD_COMMAND  exit 0: reloaded; exit 3: the service is not running (it starts with
#                   `current`); anything else: the reload failed
#
# A release the check or the service refuses is switched back: the service keeps what it ran.
set -eu
release=$(for pair in $RELEASE_FILES; do printf '%s\n' "${pair#*=}"; cat "${pair%%=*}"; done | sha256sum | cut -c1-16)
dir="$RELEASE_DIR/releases/$release"
umask 077
for pair in $RELEASE_FILES; do
    mkdir -p "$(dirname "$dir/${pair#*=}")"
    cp "${pair%%=*}" "$dir/${pair#*=}"
done
previous=$(readlink "$RELEASE_DIR/current" 2>/dev/null || true)

switch_to() {  # atomic: rename(2) of a new symlink over the old one
    ln -sfn "$1" "$RELEASE_DIR/current.next"
    mv -T "$RELEASE_DIR/current.next" "$RELEASE_DIR/current"
}

switch_back() {
    if [ -n "$previous" ]; then switch_to "$previous"; else rm -f "$RELEASE_DIR/current"; fi
}

switch_to "releases/$release"
if ! sh -c "$CHECK_COMMAND"; then
    switch_back
    echo "release $release refused by its check (above); the service keeps ${previous:-nothing}" >&2
    exit 1
fi

status=0
sh -c "$RELOAD_COMMAND" || status=$?
case "$status" in
    0) echo "reloaded release $release (was ${previous:-none})" ;;
    3) echo "the service is not running; release $release is what it starts with" ;;
    *)
        switch_back
        echo "the service refused release $release (exit $status); it keeps running ${previous:-what it had}" >&2
        exit 1 ;;
esac

# Keep the release in use and the one before it; drop older ones.
for old in "$RELEASE_DIR"/releases/*; do
    name="releases/${old##*/}"
    [ "$name" = "releases/$release" ] || [ "$name" = "$previous" ] || rm -rf "$old"
done
