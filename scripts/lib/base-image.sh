#!/usr/bin/env bash
# Make sure the base image `debian:trixie-slim` exists in the local engine.
#
# Every Dockerfile under images/ starts FROM debian:trixie-slim. Where a
# registry is reachable that name is pulled as usual; here there is none, so
# this script makes an equivalent image from Debian's own mirror:
#   debootstrap --variant=minbase trixie  ->  tar  ->  docker import
# The rootfs tarball is cached, so after `docker system prune -a` (or on a
# machine whose engine was wiped) the re-import takes seconds, not minutes.
#
# Run it (`bash scripts/lib/base-image.sh`) or source it and call
# `medisys_base_image_ensure`.
#
# Environment:
#   MEDISYS_CACHE              cache root (default $HOME/.cache/medisys-platform)
#   MEDISYS_DEBIAN_MIRROR      Debian mirror URL (default: read from apt sources)
#   MEDISYS_DEBIAN_SECURITY    security mirror URL (default: read from apt sources)
#   MEDISYS_BASE_REBUILD=1     ignore the cached tarball and debootstrap again
#   MEDISYS_BASE_IMAGE_OVERRIDE  tag to create instead of debian:trixie-slim (tests only)

# The Dockerfiles name debian:trixie-slim; the override exists only so the
# script itself can be tested without replacing the image others build on.
MEDISYS_BASE_IMAGE="${MEDISYS_BASE_IMAGE_OVERRIDE:-debian:trixie-slim}"
MEDISYS_BASE_SUITE="trixie"

_base_log() { printf '[base-image] %s\n' "$*"; }
_base_err() { printf '[base-image] ERROR: %s\n' "$*" >&2; }

# Print the first enabled `deb` URI from the host's apt sources whose URL
# matches (or, with "-v", does not match) a pattern. Reads deb822 *.sources
# files first, then one-line sources.list files.
_base_apt_uri() {
    local mode="$1" pattern="$2" f
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -f "$f" ]] || continue
        awk -v mode="$mode" -v pat="$pattern" '
            BEGIN { RS = ""; FS = "\n" }
            {
                types = ""; uris = ""; enabled = "yes"
                for (i = 1; i <= NF; i++) {
                    line = $i
                    if (line ~ /^[ \t]*#/) continue
                    if (line ~ /^Types:/)   { sub(/^Types:[ \t]*/, "", line); types = line }
                    if (line ~ /^URIs:/)    { sub(/^URIs:[ \t]*/, "", line); uris = line }
                    if (line ~ /^Enabled:/) { sub(/^Enabled:[ \t]*/, "", line); enabled = line }
                }
                if (enabled == "no" || types !~ /(^|[ \t])deb([ \t]|$)/) next
                n = split(uris, u, /[ \t]+/)
                for (j = 1; j <= n; j++) {
                    hit = (u[j] ~ pat)
                    if ((mode == "-v" && !hit) || (mode == "" && hit)) { print u[j]; exit }
                }
            }' "$f"
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -f "$f" ]] || continue
        awk -v mode="$mode" -v pat="$pattern" '
            $1 == "deb" {
                uri = $2; if (uri ~ /^\[/) { for (k = 2; k <= NF; k++) if ($k ~ /\]$/) break; uri = $(k + 1) }
                hit = (uri ~ pat)
                if ((mode == "-v" && !hit) || (mode == "" && hit)) { print uri; exit }
            }' "$f"
    done
}

_base_mirror() {
    local m="${MEDISYS_DEBIAN_MIRROR:-}"
    [[ -n "$m" ]] || m="$(_base_apt_uri -v 'security|nodesource|google|docker\.com' | grep -m1 '/debian/*$')"
    [[ -n "$m" ]] || m="http://deb.debian.org/debian"
    printf '%s\n' "${m%/}"
}

_base_security_mirror() {
    local m="${MEDISYS_DEBIAN_SECURITY:-}"
    [[ -n "$m" ]] || m="$(_base_apt_uri "" 'debian-security' | head -n1)"
    printf '%s\n' "${m%/}"
}

# Unmount anything left mounted inside a half-built rootfs, then remove it.
# rm --one-file-system never follows into a mount that could not be undone.
_base_rm_rootfs() {
    local dir="$1" mnt
    [[ -n "$dir" && -d "$dir" ]] || return 0
    while read -r mnt; do
        umount -l "$mnt" 2>/dev/null || true
    done < <(awk -v d="$dir" 'index($2, d "/") == 1 { print $2 }' /proc/mounts | sort -r)
    rm -rf --one-file-system "$dir"
}

# Configure the fresh rootfs the way a "slim" Debian image is: apt sources
# for the suite, updates and security; no recommends; no docs, man pages or
# translations from later installs; no daemons started by package scripts;
# and nothing host-specific or cache-like left in it.
_base_configure_rootfs() {
    local root="$1" mirror="$2" security="$3" suite="$MEDISYS_BASE_SUITE"

    rm -f "$root/etc/apt/sources.list"
    {
        printf 'Types: deb\nURIs: %s\nSuites: %s %s-updates\nComponents: main\n' "$mirror" "$suite" "$suite"
        printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
        if [[ -n "$security" ]]; then
            printf '\nTypes: deb\nURIs: %s\nSuites: %s-security\nComponents: main\n' "$security" "$suite"
            printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
        fi
    } >"$root/etc/apt/sources.list.d/debian.sources"

    cat >"$root/etc/apt/apt.conf.d/90medisys-slim" <<'EOF'
// Images install only what they name, keep no package cache and fetch no
// translations; each Dockerfile still removes /var/lib/apt/lists itself.
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb || true"; };
EOF

    cat >"$root/etc/dpkg/dpkg.cfg.d/90medisys-slim" <<'EOF'
# Documentation and translations are not needed in service containers;
# licence files stay.
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
EOF

    # Package scripts must not try to start services during an image build.
    printf '#!/bin/sh\n# Containers start their own process; maintainer scripts start nothing.\nexit 101\n' \
        >"$root/usr/sbin/policy-rc.d"
    chmod 0755 "$root/usr/sbin/policy-rc.d"

    # Apply the exclusions to what debootstrap already installed.
    find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
    find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
    rm -rf "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/lintian/*
    find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} + 2>/dev/null || true

    # Host-specific files (docker provides its own) and caches.
    rm -f "$root/etc/resolv.conf" "$root/etc/hostname"
    : >"$root/etc/machine-id"
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin \
        "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/debconf/*-old \
        "$root"/var/lib/dpkg/*-old "$root"/tmp/* "$root"/var/tmp/*
    find "$root/var/log" -type f -delete
    mkdir -p "$root/var/lib/apt/lists/partial"
}

_base_import() {
    local tarball="$1"
    docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["bash"]' \
        --change "LABEL org.opencontainers.image.title=\"Debian ${MEDISYS_BASE_SUITE} minbase (local debootstrap)\"" \
        --message "debootstrap --variant=minbase ${MEDISYS_BASE_SUITE}" \
        "$tarball" "$MEDISYS_BASE_IMAGE" >/dev/null
}

_base_build_tarball() {
    local tarball="$1" cache_dir work mirror security t0 rc=0 prev_trap
    cache_dir="$(dirname "$tarball")"
    mirror="$(_base_mirror)"
    security="$(_base_security_mirror)"

    if ! command -v debootstrap >/dev/null 2>&1; then
        _base_log "installing debootstrap with apt-get"
        if ! { apt-get -o DPkg::Lock::Timeout=300 update &&
            DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y \
                debootstrap debian-archive-keyring; } >"$cache_dir/.apt.log" 2>&1; then
            _base_err "apt-get could not install debootstrap. Check the Debian mirror in /etc/apt/sources.list.d, then run this again. Last lines:"
            tail -n 15 "$cache_dir/.apt.log" | sed 's/^/[base-image]   | /' >&2
            rm -f "$cache_dir/.apt.log"
            return 1
        fi
        rm -f "$cache_dir/.apt.log"
    fi

    # Build beside the cache (same file system, so the final mv is atomic)
    # and move into place only when everything worked.
    work="$(mktemp -d "$cache_dir/.build.XXXXXX")" || return 1
    prev_trap="$(trap -p EXIT)"
    # shellcheck disable=SC2064  # expand $work now: the trap fires after return
    trap "_base_rm_rootfs '$work'" EXIT
    _base_log "debootstrap --variant=minbase $MEDISYS_BASE_SUITE from $mirror (security: ${security:-none}); log $work.log"
    t0=$SECONDS
    if ! debootstrap --variant=minbase "$MEDISYS_BASE_SUITE" "$work/rootfs" "$mirror" >"$work.log" 2>&1; then
        _base_err "debootstrap of $MEDISYS_BASE_SUITE from $mirror failed. Check that the mirror answers and that debian-archive-keyring knows $MEDISYS_BASE_SUITE's key; last lines:"
        tail -n 15 "$work.log" | sed 's/^/[base-image]   | /' >&2
        if [[ -f "$work/rootfs/debootstrap/debootstrap.log" ]]; then
            tail -n 10 "$work/rootfs/debootstrap/debootstrap.log" | sed 's/^/[base-image]   | /' >&2
        fi
        rc=1
    fi
    if ((rc == 0)); then
        _base_log "debootstrap took $((SECONDS - t0))s"
        _base_configure_rootfs "$work/rootfs" "$mirror" "$security"
        t0=$SECONDS
        # Device nodes are left out: docker gives every container its own /dev.
        if tar --numeric-owner --xattrs --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' \
            -C "$work/rootfs" -cf "$work/rootfs.tar" . &&
            mv -f "$work/rootfs.tar" "$tarball"; then
            _base_log "rootfs tarball $(du -h "$tarball" | cut -f1) written in $((SECONDS - t0))s: $tarball"
        else
            _base_err "could not write $tarball (disk full?). Free space under $cache_dir and run this again."
            rc=1
        fi
    fi
    if [[ -n "$prev_trap" ]]; then eval "$prev_trap"; else trap - EXIT; fi
    _base_rm_rootfs "$work"
    rm -f "$work.log"
    return $rc
}

medisys_base_image_ensure() {
    local here cache_dir tarball t_start t0 lock_fd
    here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
    # shellcheck source=SCRIPTDIR/docker-engine.sh
    source "$here/docker-engine.sh"
    medisys_docker_engine_up || return 1

    t_start=$SECONDS
    if docker image inspect "$MEDISYS_BASE_IMAGE" >/dev/null 2>&1; then
        _base_log "$MEDISYS_BASE_IMAGE present ($(docker image inspect -f '{{.Id}}' "$MEDISYS_BASE_IMAGE" | cut -c1-19))"
        return 0
    fi

    cache_dir="${MEDISYS_CACHE:-$HOME/.cache/medisys-platform}/images"
    tarball="$cache_dir/debian-${MEDISYS_BASE_SUITE}-minbase.tar"
    mkdir -p "$cache_dir" || { _base_err "cannot create $cache_dir. Set MEDISYS_CACHE to a writable directory."; return 1; }

    # One builder at a time; a second caller waits and then finds the image.
    exec {lock_fd}>"$cache_dir/.base-image.lock"
    flock "$lock_fd"
    if docker image inspect "$MEDISYS_BASE_IMAGE" >/dev/null 2>&1; then
        flock -u "$lock_fd"; exec {lock_fd}>&-
        _base_log "$MEDISYS_BASE_IMAGE was made meanwhile by another process"
        return 0
    fi

    local rc=0
    if [[ "${MEDISYS_BASE_REBUILD:-0}" == 1 ]]; then
        rm -f "$tarball"
    fi
    if [[ -s "$tarball" ]]; then
        t0=$SECONDS
        if _base_import "$tarball"; then
            _base_log "imported $MEDISYS_BASE_IMAGE from cached $tarball in $((SECONDS - t0))s"
        else
            _base_log "cached tarball did not import; building it again"
            rm -f "$tarball"
        fi
    fi
    if ! docker image inspect "$MEDISYS_BASE_IMAGE" >/dev/null 2>&1; then
        if _base_build_tarball "$tarball"; then
            t0=$SECONDS
            if _base_import "$tarball"; then
                _base_log "imported $MEDISYS_BASE_IMAGE in $((SECONDS - t0))s"
            else
                _base_err "docker import of $tarball failed. Check 'docker info' and free disk space, then run this again."
                rc=1
            fi
        else
            rc=1
        fi
    fi
    flock -u "$lock_fd"; exec {lock_fd}>&-
    if ((rc == 0)); then
        _base_log "$MEDISYS_BASE_IMAGE ready in $((SECONDS - t_start))s, size $(docker image inspect -f '{{.Size}}' "$MEDISYS_BASE_IMAGE" | awk '{printf "%.0fMB", $1/1e6}')"
    fi
    return $rc
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    set -uo pipefail
    medisys_base_image_ensure
    exit $?
fi
