#!/usr/bin/env bash
# Make sure a Docker engine answers `docker info`.
#
# A CI machine or a fresh developer machine here has only a Docker *client*
# (/usr/local/bin/docker); there is no systemd to start a daemon. This script
# installs Debian's engine (docker.io: dockerd, containerd, runc) when it is
# missing, starts dockerd in the background so it outlives this script, and
# waits until it answers. Running it again when the engine is up does nothing.
#
# Run it (`bash scripts/lib/docker-engine.sh`) or source it and call
# `medisys_docker_engine_up`.
#
# Environment:
#   MEDISYS_DOCKERD_TIMEOUT  seconds to wait for the daemon (default 60)
#   MEDISYS_DOCKERD_LOG      daemon log file (default /var/log/dockerd.log)

_docker_log() { printf '[docker] %s\n' "$*"; }

_docker_fail() {
    # One message that says what failed and what to do; the log tail follows.
    local what="$1" todo="$2" log="${MEDISYS_DOCKERD_LOG:-/var/log/dockerd.log}"
    {
        printf '[docker] ERROR: %s. %s\n' "$what" "$todo"
        if [[ -s "$log" ]]; then
            printf '[docker]   last lines of %s:\n' "$log"
            tail -n 15 "$log" | sed 's/^/[docker]   | /'
        fi
    } >&2
    return 1
}

_docker_answers() { docker info >/dev/null 2>&1; }

_docker_wait() {
    # Wait for `docker info`; give up early if the daemon we started died.
    local pid="$1" timeout="$2" waited=0
    while ! _docker_answers; do
        if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
            return 2
        fi
        if ((waited >= timeout)); then
            return 1
        fi
        sleep 1
        waited=$((waited + 1))
    done
    return 0
}

_docker_install_engine() {
    command -v apt-get >/dev/null 2>&1 ||
        { _docker_fail "dockerd is not installed and apt-get is not available" \
            "Install a Docker engine (dockerd) by hand and run this again"; return 1; }
    _docker_log "installing Debian's docker.io (dockerd, containerd, runc) with apt-get"
    local apt_log
    apt_log="$(mktemp)"
    # The lock timeout lets this wait for another apt run instead of failing.
    if ! { apt-get -o DPkg::Lock::Timeout=300 update &&
        DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y \
            --no-install-recommends docker.io; } >"$apt_log" 2>&1; then
        {
            printf '[docker] ERROR: apt-get could not install docker.io. '
            printf 'Check that the Debian mirror in /etc/apt/sources.list.d answers, then run this again.\n'
            printf '[docker]   last lines of apt-get output:\n'
            tail -n 15 "$apt_log" | sed 's/^/[docker]   | /'
        } >&2
        rm -f "$apt_log"
        return 1
    fi
    rm -f "$apt_log"
    _docker_log "installed: $(dockerd --version 2>/dev/null)"
}

_docker_check_client() {
    # The client may be newer than Debian's daemon (e.g. CLI 28 against
    # dockerd 20.10); it negotiates the API version down. Prove that it does.
    local client server
    client="$(docker version --format '{{.Client.Version}} (API {{.Client.APIVersion}})' 2>/dev/null)"
    server="$(docker version --format '{{.Server.Version}} (API {{.Server.APIVersion}})' 2>/dev/null)"
    if [[ -z "$server" ]]; then
        _docker_fail "the docker client ($(command -v docker)) cannot talk to the daemon" \
            "Run 'docker version' to see why; a client/daemon API mismatch can be pinned with DOCKER_API_VERSION"
        return 1
    fi
    _docker_log "client $client, daemon $server, storage driver $(docker info --format '{{.Driver}}' 2>/dev/null)"
}

medisys_docker_engine_up() {
    local timeout="${MEDISYS_DOCKERD_TIMEOUT:-60}"
    local log="${MEDISYS_DOCKERD_LOG:-/var/log/dockerd.log}"

    if _docker_answers; then
        _docker_log "engine already answers"
        _docker_check_client
        return
    fi

    if ! command -v dockerd >/dev/null 2>&1; then
        if [[ $EUID -ne 0 ]]; then
            _docker_fail "dockerd is not installed and this is not root" \
                "Run this script as root (it installs Debian's docker.io) or start a Docker engine yourself"
            return 1
        fi
        _docker_install_engine || return 1
    fi
    if ! command -v docker >/dev/null 2>&1; then
        _docker_fail "no docker client on PATH" "Install docker.io (it ships /usr/bin/docker)"
        return 1
    fi

    # Serialise with any other copy of this script started at the same time,
    # so only one dockerd is launched.
    local lock=/run/medisys-docker-engine.lock lock_fd
    exec {lock_fd}>"$lock"
    flock -w $((timeout + 30)) "$lock_fd" || true

    if _docker_answers; then
        _docker_log "engine came up meanwhile (started by another process)"
        flock -u "$lock_fd"; exec {lock_fd}>&-
        _docker_check_client
        return
    fi

    local pid=""
    if pid="$(pgrep -x dockerd | head -n 1)" && [[ -n "$pid" ]]; then
        _docker_log "dockerd is running (pid $pid) but not answering yet; waiting up to ${timeout}s"
    else
        if [[ $EUID -ne 0 ]]; then
            flock -u "$lock_fd"; exec {lock_fd}>&-
            _docker_fail "dockerd is not running and this is not root" \
                "Start it as root: run this script with sudo"
            return 1
        fi
        # A pid file left by a daemon that was killed stops a new one.
        if [[ -f /var/run/docker.pid ]] && ! kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
            rm -f /var/run/docker.pid
        fi
        mkdir -p "$(dirname "$log")"
        printf '\n==== %s: dockerd started by %s ====\n' "$(date -Is)" "${BASH_SOURCE[0]}" >>"$log"
        # setsid + nohup: the daemon is in its own session, so it survives
        # this script, its shell and a closed terminal.
        setsid nohup dockerd >>"$log" 2>&1 </dev/null &
        pid=$!
        _docker_log "started dockerd (pid $pid), log $log; waiting up to ${timeout}s"
    fi

    local start=$SECONDS rc=0
    _docker_wait "$pid" "$timeout" || rc=$?
    flock -u "$lock_fd"; exec {lock_fd}>&-
    case $rc in
        0) _docker_log "engine answers after $((SECONDS - start))s" ;;
        2) _docker_fail "dockerd (pid $pid) exited before answering" \
               "Read $log for the cause (storage driver, iptables, a stale /var/run/docker.pid), fix it and run this again"
           return 1 ;;
        *) _docker_fail "dockerd did not answer 'docker info' within ${timeout}s" \
               "Read $log; raise MEDISYS_DOCKERD_TIMEOUT if the machine is just slow, then run this again"
           return 1 ;;
    esac
    _docker_check_client
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    set -uo pipefail
    medisys_docker_engine_up
    exit $?
fi
