# shellcheck shell=bash
# Functions behind scripts/hosts: several Docker hosts on this one machine, joined in a Swarm.
# Sourced by scripts/hosts (read its header for the design and the reasons behind it); a drill or
# a test may source it too and call hosts_docker N ..., hosts_start_engine N, hosts_stop_engine N.
#
# Environment:
#   MEDISYS_HOSTS_DIR        state directory (default <repo>/.state/hosts)
#   MEDISYS_HOSTS            number of hosts, 1-9 (default 3)
#   MEDISYS_HOSTS_TIMEOUT    seconds to wait for an engine or the Swarm (default 60)
#   MEDISYS_ROOT_DOCKER_HOST the machine's own engine, where the images are built
#                            (default unix:///var/run/docker.sock)

HOSTS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HOSTS_BRIDGE=mdshosts0
HOSTS_NET=10.99.0              # the bridge's /24: .1 the root namespace, .1N host hN
HOSTS_SWARM_POOL=10.250.0.0/16 # Swarm's own overlays (ingress and any without a subnet)
HOSTS_RULE_TAG=medisys-hosts   # comment on every iptables rule this adds
HOSTS_LOCK=/run/lock/medisys-hosts.lock

_hosts_log() { printf '[hosts] %s\n' "$*"; }
# Seconds since START (an $EPOCHREALTIME), to a tenth.
_hosts_elapsed() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.1fs", b - a}'; }
_hosts_warn() { printf '[hosts] WARNING: %s\n' "$*" >&2; }
# One line: what failed, then what to do.
_hosts_fail() { printf '[hosts] ERROR: %s. %s\n' "$1" "$2" >&2; return 1; }

hosts_init() {
    HOSTS_DIR="${MEDISYS_HOSTS_DIR:-$HOSTS_ROOT/.state/hosts}"
    [[ "$HOSTS_DIR" == /* ]] || HOSTS_DIR="$PWD/$HOSTS_DIR"
    HOSTS_DIR="$(realpath -m "$HOSTS_DIR")"
    # Everything under it is removed by `down`: refuse a directory that is obviously not ours.
    case "$HOSTS_DIR" in
        / | /root | /home | /tmp | /var | /usr | /etc | /run | "$HOSTS_ROOT")
            _hosts_fail "MEDISYS_HOSTS_DIR=$HOSTS_DIR is not a state directory this script may own" \
                "Point MEDISYS_HOSTS_DIR at a directory of its own (default $HOSTS_ROOT/.state/hosts)"
            return 1 ;;
    esac
    if [[ "$HOSTS_DIR" =~ [[:space:]] ]]; then
        _hosts_fail "MEDISYS_HOSTS_DIR '$HOSTS_DIR' contains white space" "Use a path without spaces"
        return 1
    fi
    # Unix sockets live under each host's exec-root (containerd's is the longest, about 40
    # characters below it); a socket path is limited to 107 bytes.
    if ((${#HOSTS_DIR} > 60)); then
        _hosts_fail "MEDISYS_HOSTS_DIR=$HOSTS_DIR is ${#HOSTS_DIR} characters long: the engines' unix sockets below it would pass the 107-byte limit" \
            "Set MEDISYS_HOSTS_DIR to a path of at most 60 characters"
        return 1
    fi
    HOSTS_COUNT="${MEDISYS_HOSTS:-3}"
    if ! [[ "$HOSTS_COUNT" =~ ^[1-9]$ ]]; then
        _hosts_fail "MEDISYS_HOSTS=$HOSTS_COUNT is not a number from 1 to 9" "Set MEDISYS_HOSTS to 1-9 (addresses are $HOSTS_NET.1N)"
        return 1
    fi
    HOSTS_TIMEOUT="${MEDISYS_HOSTS_TIMEOUT:-60}"
    HOSTS_ROOT_ENGINE="${MEDISYS_ROOT_DOCKER_HOST:-unix:///var/run/docker.sock}"
    HOSTS_PKI="$HOSTS_DIR/pki"
}

# --- names and addresses -----------------------------------------------------------------------

hosts_ip() { printf '%s.%d' "$HOSTS_NET" $((10 + $1)); }
hosts_ns() { printf 'medisys-h%d' "$1"; }
hosts_veth() { printf 'mdsh-h%d' "$1"; }
hosts_home() { printf '%s/h%d' "$HOSTS_DIR" "$1"; }
hosts_sock() { printf 'unix://%s/h%d/docker.sock' "$HOSTS_DIR" "$1"; }
hosts_tcp() { printf 'tcp://%s:2376' "$(hosts_ip "$1")"; }
# Addresses inside a host (its docker0 and local networks): in 10.0.0.0/8, clear of the stacks'
# 10.0.1-4.0/24, the tests' 10.211-220.x, this bridge (10.99.0.0/24) and Swarm's 10.250-251.x.
hosts_bip() { printf '10.98.%d.1/24' "$1"; }
hosts_local_pool() { printf '10.%d.0.0/16' $((100 + $1)); }

# `hosts_index h2` -> 2; fails with a message for anything that is not a configured host.
hosts_index() {
    local name="${1:-}"
    if [[ "$name" =~ ^h([1-9])$ ]] && ((BASH_REMATCH[1] <= HOSTS_COUNT)); then
        printf '%d' "${BASH_REMATCH[1]}"
        return 0
    fi
    _hosts_fail "'$name' is not a host here" "Name one of h1..h$HOSTS_COUNT (MEDISYS_HOSTS=$HOSTS_COUNT)"
}

# The engine of host N over its unix socket (root only), e.g. `hosts_docker 1 node ls`.
hosts_docker() {
    local n="$1"
    shift
    docker -H "$(hosts_sock "$n")" "$@"
}

# The engine of host N the way a deployer reaches it: TCP with the client certificate.
hosts_docker_tls() {
    local n="$1"
    shift
    docker -H "$(hosts_tcp "$n")" --tlsverify --tlscacert "$HOSTS_PKI/ca.pem" \
        --tlscert "$HOSTS_PKI/client-cert.pem" --tlskey "$HOSTS_PKI/client-key.pem" "$@"
}

_hosts_root_docker() { docker -H "$HOSTS_ROOT_ENGINE" "$@"; }

# --- preconditions and locking -----------------------------------------------------------------

hosts_require_root() {
    [[ $EUID -eq 0 ]] ||
        _hosts_fail "scripts/hosts $1 must run as root (network namespaces, iptables, dockerd)" "Run it again with sudo"
}

hosts_require_tools() {
    local tool hint
    for tool in "$@"; do
        command -v "$tool" >/dev/null 2>&1 && continue
        case "$tool" in
            dockerd | docker | iptables) hint="Run 'bash scripts/lib/docker-engine.sh' (installs Debian's docker.io with dockerd, containerd, runc and iptables)" ;;
            openssl) hint="Install it: apt-get install -y openssl" ;;
            ip) hint="Install it: apt-get install -y iproute2" ;;
            nsenter | unshare | setsid | flock) hint="Install it: apt-get install -y util-linux" ;;
            pulumi) hint="Run 'source .state/env.sh' (scripts/bootstrap writes it) so the Pulumi CLI is on PATH" ;;
            *) hint="Install $tool" ;;
        esac
        _hosts_fail "$tool is not on PATH" "$hint"
        return 1
    done
}

# Network namespaces, the bridge and iptables are machine-wide: one change at a time.
hosts_lock() {
    mkdir -p "$(dirname "$HOSTS_LOCK")"
    exec {HOSTS_LOCK_FD}>"$HOSTS_LOCK"
    if ! flock -w 300 "$HOSTS_LOCK_FD"; then
        _hosts_fail "another scripts/hosts run held $HOSTS_LOCK for 300 s" "Wait for it to finish (or find it with 'fuser $HOSTS_LOCK') and run this again"
        return 1
    fi
}

# The bridge carries the state directory that made it in its alias; a second checkout's state
# directory would otherwise fight over the same names.
_hosts_check_owner() {
    local alias
    ip link show "$HOSTS_BRIDGE" >/dev/null 2>&1 || return 0
    alias="$(ip -o link show "$HOSTS_BRIDGE" | sed -n 's/.* alias \(.*\)$/\1/p')"
    alias="${alias#"$HOSTS_RULE_TAG" }"
    if [[ -n "$alias" && "$alias" != "$HOSTS_DIR" ]]; then
        _hosts_fail "the hosts on this machine were made from another state directory ($alias)" \
            "Run 'MEDISYS_HOSTS_DIR=$alias scripts/hosts down' (or use that directory) first"
        return 1
    fi
}

# --- PKI ---------------------------------------------------------------------------------------

# A cert is kept when it exists, verifies against the CA and is valid for at least 30 more days.
_hosts_cert_ok() {
    local cert="$1" key="$2"
    [[ -s "$cert" && -s "$key" ]] || return 1
    openssl verify -CAfile "$HOSTS_PKI/ca.pem" "$cert" >/dev/null 2>&1 || return 1
    openssl x509 -in "$cert" -noout -checkend $((30 * 86400)) >/dev/null 2>&1 || return 1
    # The key belongs to the certificate.
    [[ "$(openssl x509 -in "$cert" -noout -pubkey 2>/dev/null)" == "$(openssl pkey -in "$key" -pubout 2>/dev/null)" ]]
}

# _hosts_issue NAME CN EXTENSIONS: NAME-key.pem and NAME-cert.pem under pki/, signed by the CA.
_hosts_issue() {
    local name="$1" cn="$2" ext="$3" tmp
    tmp="$(mktemp -d "$HOSTS_PKI/.issue.XXXXXX")"
    printf '%s\n' "$ext" >"$tmp/ext.cnf"
    if ! { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$tmp/key.pem" &&
        openssl req -new -key "$tmp/key.pem" -subj "/O=medisys/CN=$cn" -out "$tmp/req.csr" &&
        openssl x509 -req -in "$tmp/req.csr" -CA "$HOSTS_PKI/ca.pem" -CAkey "$HOSTS_PKI/ca-key.pem" \
            -CAcreateserial -days 825 -sha256 -extfile "$tmp/ext.cnf" -out "$tmp/cert.pem"; } >"$tmp/log" 2>&1; then
        _hosts_fail "openssl could not issue the certificate $name ($(tail -n 1 "$tmp/log"))" "Check that openssl works (openssl version) and run this again"
        rm -rf "$tmp"
        return 1
    fi
    chmod 0600 "$tmp/key.pem"
    chmod 0644 "$tmp/cert.pem"
    mv -f "$tmp/key.pem" "$HOSTS_PKI/$name-key.pem"
    mv -f "$tmp/cert.pem" "$HOSTS_PKI/$name-cert.pem"
    rm -rf "$tmp"
}

hosts_pki() {
    local n ip made=0 old_umask
    old_umask="$(umask)"
    umask 077
    mkdir -p "$HOSTS_PKI"
    if [[ ! -s "$HOSTS_PKI/ca.pem" || ! -s "$HOSTS_PKI/ca-key.pem" ]] ||
        ! openssl x509 -in "$HOSTS_PKI/ca.pem" -noout -checkend $((60 * 86400)) >/dev/null 2>&1; then
        if ! { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$HOSTS_PKI/ca-key.pem.tmp" &&
            openssl req -x509 -new -key "$HOSTS_PKI/ca-key.pem.tmp" -sha256 -days 3650 \
                -subj "/O=medisys/CN=medisys hosts CA" \
                -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
                -out "$HOSTS_PKI/ca.pem.tmp"; } >"$HOSTS_PKI/.ca.log" 2>&1; then
            _hosts_fail "openssl could not make the hosts' CA ($(tail -n 1 "$HOSTS_PKI/.ca.log"))" "Check that openssl works (openssl version) and run this again"
            umask "$old_umask"
            return 1
        fi
        mv -f "$HOSTS_PKI/ca-key.pem.tmp" "$HOSTS_PKI/ca-key.pem"
        mv -f "$HOSTS_PKI/ca.pem.tmp" "$HOSTS_PKI/ca.pem"
        chmod 0644 "$HOSTS_PKI/ca.pem"
        rm -f "$HOSTS_PKI/.ca.log"
        made=$((made + 1))
    fi
    for ((n = 1; n <= HOSTS_COUNT; n++)); do
        ip="$(hosts_ip "$n")"
        if ! _hosts_cert_ok "$HOSTS_PKI/h$n-server-cert.pem" "$HOSTS_PKI/h$n-server-key.pem" ||
            ! openssl x509 -in "$HOSTS_PKI/h$n-server-cert.pem" -noout -ext subjectAltName 2>/dev/null | grep -q "IP Address:$ip\b"; then
            _hosts_issue "h$n-server" "h$n" "$(printf '%s\n' \
                "basicConstraints=critical,CA:FALSE" \
                "keyUsage=critical,digitalSignature,keyEncipherment" \
                "extendedKeyUsage=serverAuth" \
                "subjectAltName=IP:$ip,DNS:h$n,DNS:localhost,IP:127.0.0.1")" || { umask "$old_umask"; return 1; }
            made=$((made + 1))
        fi
    done
    if ! _hosts_cert_ok "$HOSTS_PKI/client-cert.pem" "$HOSTS_PKI/client-key.pem"; then
        _hosts_issue client "medisys deployer" "$(printf '%s\n' \
            "basicConstraints=critical,CA:FALSE" \
            "keyUsage=critical,digitalSignature" \
            "extendedKeyUsage=clientAuth")" || { umask "$old_umask"; return 1; }
        made=$((made + 1))
    fi
    umask "$old_umask"
    if ((made)); then
        _hosts_log "pki: made $made key(s) and certificate(s) in $HOSTS_PKI"
    else
        _hosts_log "pki: CA, $HOSTS_COUNT server and 1 client certificate present in $HOSTS_PKI"
    fi
}

# Per host a DOCKER_CERT_PATH directory: ca.pem, cert.pem, key.pem (links to the client's).
_hosts_client_dir() {
    local n="$1" dir
    dir="$(hosts_home "$n")/client"
    mkdir -p "$dir"
    ln -sfn ../../pki/ca.pem "$dir/ca.pem"
    ln -sfn ../../pki/client-cert.pem "$dir/cert.pem"
    ln -sfn ../../pki/client-key.pem "$dir/key.pem"
}

# --- network -----------------------------------------------------------------------------------

# Which filter chain takes our rules: DOCKER-USER when the root engine made it (Docker keeps
# it first in FORWARD and never flushes it), else FORWARD itself.
_hosts_chain() {
    if iptables -n -L DOCKER-USER >/dev/null 2>&1; then echo DOCKER-USER; else echo FORWARD; fi
}

# Host to host over the bridge (with br_netfilter, bridged frames go through FORWARD, whose
# policy the root engine set to DROP), and the return half of any connection another rule let
# through. No NAT out: the hosts reach each other and the root namespace, nothing beyond.
_hosts_rules() {
    printf '%s\n' \
        "-i $HOSTS_BRIDGE -o $HOSTS_BRIDGE -m comment --comment $HOSTS_RULE_TAG -j ACCEPT" \
        "-o $HOSTS_BRIDGE -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment $HOSTS_RULE_TAG -j ACCEPT" \
        "-i $HOSTS_BRIDGE -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment $HOSTS_RULE_TAG -j ACCEPT"
}

_hosts_iptables_up() {
    local chain rule added=0
    local -a args
    chain="$(_hosts_chain)"
    while IFS= read -r rule; do
        read -ra args <<<"$rule"
        iptables -C "$chain" "${args[@]}" 2>/dev/null && continue
        if ! iptables -I "$chain" 1 "${args[@]}"; then
            _hosts_fail "iptables could not add the rule '$rule' to $chain" "Check 'iptables -S $chain' works (iptables and the root engine must use the same backend) and run this again"
            return 1
        fi
        added=$((added + 1))
    done < <(_hosts_rules)
    ((added == 0)) || _hosts_log "iptables: $added ACCEPT rule(s) for $HOSTS_BRIDGE added to $chain (comment $HOSTS_RULE_TAG)"
}

_hosts_iptables_down() {
    local chain line removed=0
    local -a args
    command -v iptables >/dev/null 2>&1 || return 0
    for chain in DOCKER-USER FORWARD; do
        iptables -n -L "$chain" >/dev/null 2>&1 || continue
        while IFS= read -r line; do
            read -ra args <<<"${line#-A "$chain" }"
            iptables -D "$chain" "${args[@]}" && removed=$((removed + 1))
        done < <(iptables -S "$chain" | grep -- "--comment $HOSTS_RULE_TAG " || true)
    done
    ((removed == 0)) || _hosts_log "iptables: removed $removed rule(s) tagged $HOSTS_RULE_TAG"
}

hosts_network_up() {
    local n ns veth ip
    if ! ip link show "$HOSTS_BRIDGE" >/dev/null 2>&1; then
        ip link add "$HOSTS_BRIDGE" type bridge ||
            { _hosts_fail "could not create the bridge $HOSTS_BRIDGE" "Check that this kernel has bridge support (ip link add x type bridge) and run this again"; return 1; }
        _hosts_log "network: bridge $HOSTS_BRIDGE created"
    fi
    ip link set "$HOSTS_BRIDGE" alias "$HOSTS_RULE_TAG $HOSTS_DIR"
    ip -4 addr show dev "$HOSTS_BRIDGE" | grep -q "inet $HOSTS_NET.1/24" ||
        ip addr add "$HOSTS_NET.1/24" dev "$HOSTS_BRIDGE" ||
        { _hosts_fail "could not give $HOSTS_BRIDGE the address $HOSTS_NET.1/24" "Check with 'ip route' that no other interface holds $HOSTS_NET.0/24, then run this again"; return 1; }
    ip link set "$HOSTS_BRIDGE" up
    if [[ "$(cat /proc/sys/net/ipv4/ip_forward)" != 1 ]]; then
        echo 1 >/proc/sys/net/ipv4/ip_forward
        _hosts_log "network: net.ipv4.ip_forward enabled"
    fi
    for ((n = 1; n <= HOSTS_COUNT; n++)); do
        ns="$(hosts_ns "$n")" veth="$(hosts_veth "$n")" ip="$(hosts_ip "$n")"
        if [[ ! -e "/var/run/netns/$ns" ]]; then
            ip netns add "$ns" ||
                { _hosts_fail "could not create the network namespace $ns" "Check that /var/run/netns is writable and run this again"; return 1; }
        fi
        # A root-side veth whose other end is not in the namespace (the namespace was deleted and
        # made again while something held the old one) is replaced.
        if ip link show "$veth" >/dev/null 2>&1 && ! ip -n "$ns" link show eth0 >/dev/null 2>&1; then
            ip link del "$veth"
        fi
        if ! ip link show "$veth" >/dev/null 2>&1; then
            ip link add "$veth" type veth peer name eth0 netns "$ns" ||
                { _hosts_fail "could not create the veth pair $veth/eth0 for $ns" "Check 'ip link' for a leftover $veth and run 'scripts/hosts down' then up"; return 1; }
            _hosts_log "network: h$n: namespace $ns, $veth <-> eth0 $ip"
        fi
        ip link set "$veth" master "$HOSTS_BRIDGE"
        ip link set "$veth" up
        ip -n "$ns" link set lo up
        ip -n "$ns" addr replace "$ip/24" dev eth0
        ip -n "$ns" link set eth0 up
        ip -n "$ns" route replace default via "$HOSTS_NET.1" dev eth0
    done
    _hosts_iptables_up
}

hosts_network_down() {
    local ns n
    for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^medisys-h[0-9]$' || true); do
        ip netns del "$ns" && _hosts_log "network: namespace $ns deleted"
    done
    for n in 1 2 3 4 5 6 7 8 9; do
        if ip link show "$(hosts_veth "$n")" >/dev/null 2>&1; then
            ip link del "$(hosts_veth "$n")"
        fi
    done
    if ip link show "$HOSTS_BRIDGE" >/dev/null 2>&1; then
        ip link del "$HOSTS_BRIDGE" && _hosts_log "network: bridge $HOSTS_BRIDGE deleted"
    fi
    _hosts_iptables_down
}

# --- engines -----------------------------------------------------------------------------------

# The pid of host N's running dockerd, or nothing. Only a process that is a dockerd with this
# host's pid file on its command line counts (a stale pid file may name any process).
hosts_engine_pid() {
    local n="$1" pidfile pid
    pidfile="$(hosts_home "$n")/docker.pid"
    [[ -s "$pidfile" ]] || return 1
    pid="$(cat "$pidfile")"
    [[ "$pid" =~ ^[0-9]+$ && -r "/proc/$pid/cmdline" ]] || return 1
    { tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | grep -q -- "dockerd .*--pidfile $pidfile " || return 1
    printf '%s' "$pid"
}

# A process that exists and is not a zombie (this machine's pid 1 may not reap orphans, so an
# engine that exited can linger as one, and `kill -0` still succeeds on it).
_hosts_alive() {
    local state
    state="$({ cut -d')' -f2 <"/proc/$1/stat"; } 2>/dev/null | awk '{print $1}')"
    [[ -n "$state" && "$state" != Z && "$state" != X ]]
}

_hosts_answers() { timeout 10 docker -H "$(hosts_sock "$1")" info --format '{{.ServerVersion}}' >/dev/null 2>&1; }

# Start host N's dockerd (if it is not running) and wait until it answers. Used by `up` and
# `start`, so a restarted engine always gets the same flags.
hosts_start_engine() {
    local n="$1" home ns log pid waited=0 same_ns
    home="$(hosts_home "$n")" ns="$(hosts_ns "$n")" log="$(hosts_home "$n")/dockerd.log"
    if [[ ! -e "/var/run/netns/$ns" ]]; then
        _hosts_fail "h$n has no network namespace ($ns)" "Run 'scripts/hosts up' to make the hosts"
        return 1
    fi
    if pid="$(hosts_engine_pid "$n")"; then
        same_ns=0
        [[ "$(stat -L -c %i "/proc/$pid/ns/net" 2>/dev/null)" == "$(stat -L -c %i "/var/run/netns/$ns")" ]] && same_ns=1
        if ((same_ns)); then
            if _hosts_answers "$n"; then
                _hosts_log "h$n: engine running (pid $pid)"
                return 0
            fi
        else
            _hosts_warn "h$n: dockerd (pid $pid) runs in an old network namespace: restarting it"
            hosts_stop_engine "$n" || return 1
            pid=""
        fi
    fi
    if [[ -z "$pid" ]]; then
        mkdir -p "$home/data" "$home/exec"
        rm -f "$home/docker.pid"
        _hosts_client_dir "$n"
        # Its own daemon.json: an /etc/docker/daemon.json written for the root engine (hosts,
        # data-root, ...) must not reach these engines. Its own identity key too (dockerd 20.10
        # takes that path from the config file only): with the shared /etc/docker/key.json every
        # engine reports the same ID.
        printf '{"deprecated-key-path": "%s/key.json"}\n' "$home" >"$home/daemon.json"
        printf '\n==== %s: dockerd h%d started by scripts/hosts ====\n' "$(date -Is)" "$n" >>"$log"
        # setsid + nohup: its own session, so it outlives this script. unshare --uts gives it its
        # own host name (hN), so `docker node ls` and node.hostname constraints tell hosts apart.
        # nsenter --net only (not `ip netns exec`, which remounts /sys and costs the cgroups).
        # The subshell first closes the lock's descriptor: a daemon inheriting it would hold the
        # lock for its whole life.
        (
            [[ -z "${HOSTS_LOCK_FD:-}" ]] || exec {HOSTS_LOCK_FD}>&-
            # shellcheck disable=SC2016 # $1 and $@ belong to the inner bash
            exec setsid nohup unshare --uts -- bash -c 'echo "$1" >/proc/sys/kernel/hostname && shift && exec "$@"' _ "h$n" \
                nsenter --net="/var/run/netns/$ns" -- \
                dockerd \
                --config-file "$home/daemon.json" \
                --data-root "$home/data" \
                --exec-root "$home/exec" \
                --pidfile "$home/docker.pid" \
                --host "$(hosts_sock "$n")" \
                --host "$(hosts_tcp "$n")" \
                --tlsverify \
                --tlscacert "$HOSTS_PKI/ca.pem" \
                --tlscert "$HOSTS_PKI/h$n-server-cert.pem" \
                --tlskey "$HOSTS_PKI/h$n-server-key.pem" \
                --bip "$(hosts_bip "$n")" \
                --default-address-pool "base=$(hosts_local_pool "$n"),size=24" \
                --containerd-namespace "medisys-h$n" \
                --containerd-plugins-namespace "medisys-h$n-plugins" \
                --swarm-default-advertise-addr "$(hosts_ip "$n")" \
                --label "medisys.host=h$n"
        ) >>"$log" 2>&1 </dev/null &
        pid=$!
        _hosts_log "h$n: dockerd started (pid $pid), log $log"
    fi
    while ! _hosts_answers "$n"; do
        if ! _hosts_alive "$pid"; then
            _hosts_fail "h$n: dockerd exited before it answered" "Read $log (last lines: $(tail -n 3 "$log" | tr '\n' ' ' | cut -c1-300)), fix the cause and run this again"
            return 1
        fi
        if ((waited >= HOSTS_TIMEOUT * 2)); then
            _hosts_fail "h$n: dockerd (pid $pid) did not answer within ${HOSTS_TIMEOUT}s" "Read $log; raise MEDISYS_HOSTS_TIMEOUT if the machine is just slow, then run this again"
            return 1
        fi
        sleep 0.5
        waited=$((waited + 1))
    done
}

# Processes that belong to host N although its dockerd is gone: anything in its network
# namespace (containerd, shims, docker-proxy, --network host containers), and the engine's own
# programs that name its state directory on their command line (nothing else: a `tail -f` of
# its log stays).
_hosts_leftover_pids() {
    local n="$1" ns home p comm
    ns="$(hosts_ns "$n")" home="$(hosts_home "$n")/"
    {
        [[ -e "/var/run/netns/$ns" ]] && ip netns pids "$ns" 2>/dev/null
        for p in $(pgrep -f -- "$home" || true); do
            comm="$(cat "/proc/$p/comm" 2>/dev/null)"
            case "$comm" in
                dockerd | containerd | containerd-shim* | docker-proxy | runc* | docker-init) printf '%s\n' "$p" ;;
            esac
        done
    } | sort -un | grep -vx -- "$$" || true
}

# Containers whose shim is gone outlive their engine; runc still knows them by its state dir.
_hosts_kill_containers() {
    local n="$1" root id
    command -v runc >/dev/null 2>&1 || return 0
    for root in "$(hosts_home "$n")"/exec/runtime-runc/*/; do
        [[ -d "$root" ]] || continue
        for id in $(runc --root "$root" list -q 2>/dev/null); do
            runc --root "$root" kill --all "$id" KILL 2>/dev/null || true
            runc --root "$root" delete --force "$id" 2>/dev/null || true
        done
    done
}

# Stop host N's dockerd: SIGTERM (it stops its containers and its containerd), wait for it to
# exit; after MEDISYS_HOSTS_TIMEOUT SIGKILL, and whatever of the host's is left goes too.
hosts_stop_engine() {
    local n="$1" pid waited=0 left
    if pid="$(hosts_engine_pid "$n")"; then
        kill -TERM "$pid" 2>/dev/null || true
        while _hosts_alive "$pid"; do
            if ((waited >= HOSTS_TIMEOUT * 2)); then
                _hosts_warn "h$n: dockerd (pid $pid) did not exit ${HOSTS_TIMEOUT}s after SIGTERM: killing it"
                kill -KILL "$pid" 2>/dev/null || true
                sleep 1
                break
            fi
            sleep 0.5
            waited=$((waited + 1))
        done
        _hosts_log "h$n: dockerd (pid $pid) stopped"
    fi
    _hosts_kill_containers "$n"
    left="$(_hosts_leftover_pids "$n" | tr '\n' ' ')"
    if [[ -n "${left// /}" ]]; then
        # shellcheck disable=SC2086 # a list of pids
        kill -KILL $left 2>/dev/null || true
        _hosts_log "h$n: ended leftover processes $left"
    fi
    rm -f "$(hosts_home "$n")/docker.pid"
}

# --- swarm -------------------------------------------------------------------------------------

_hosts_swarm_state() { hosts_docker "$1" info --format '{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}} {{.Swarm.NodeID}} {{.Swarm.Cluster.ID}}' 2>/dev/null; }

# Every host a manager of one Swarm; the first host already in one decides which.
hosts_swarm_up() {
    local n state manager="" cluster="" token ids="" waited=0 id label
    local -a st
    ((HOSTS_COUNT != 2)) || _hosts_warn "two hosts make two managers: losing either loses the Swarm's quorum (MEDISYS_HOSTS=3 survives one)"
    for ((n = 1; n <= HOSTS_COUNT; n++)); do
        read -ra st <<<"$(_hosts_swarm_state "$n")"
        if [[ "${st[0]:-}" == active && "${st[1]:-}" == true ]]; then
            manager="$n" cluster="${st[3]:-}"
            break
        fi
    done
    if [[ -z "$manager" ]]; then
        if ! hosts_docker 1 swarm init --advertise-addr "$(hosts_ip 1)" --listen-addr "$(hosts_ip 1):2377" \
            --default-addr-pool "$HOSTS_SWARM_POOL" >/dev/null; then
            _hosts_fail "h1: docker swarm init failed" "Read $(hosts_home 1)/dockerd.log; 'scripts/hosts down' then 'up' starts from scratch"
            return 1
        fi
        manager=1
        read -ra st <<<"$(_hosts_swarm_state 1)"
        cluster="${st[3]:-}"
        _hosts_log "swarm: initialised on h1 ($(hosts_ip 1):2377, address pool $HOSTS_SWARM_POOL)"
    fi
    token="$(hosts_docker "$manager" swarm join-token -q manager)" ||
        { _hosts_fail "h$manager: could not read the Swarm's manager join token" "Check 'scripts/hosts status'; a Swarm without quorum needs its managers back (scripts/hosts start hN)"; return 1; }
    for ((n = 1; n <= HOSTS_COUNT; n++)); do
        ((n == manager)) && continue
        read -ra st <<<"$(_hosts_swarm_state "$n")"
        state="${st[0]:-unknown}"
        if [[ "$state" == active && "${st[3]:-}" != "$cluster" ]]; then
            _hosts_fail "h$n is in another Swarm (cluster ${st[3]:-?}, not $cluster)" "Run 'scripts/hosts down' then 'scripts/hosts up' to start from scratch"
            return 1
        fi
        if [[ "$state" == active && "${st[1]:-}" != true ]]; then
            hosts_docker "$manager" node promote "${st[2]}" >/dev/null &&
                _hosts_log "swarm: h$n promoted to manager"
            continue
        fi
        [[ "$state" == active ]] && continue
        if [[ "$state" != inactive ]]; then
            _hosts_warn "h$n: Swarm state '$state': leaving it before joining again"
            hosts_docker "$n" swarm leave --force >/dev/null 2>&1 || true
        fi
        if ! hosts_docker "$n" swarm join --token "$token" --advertise-addr "$(hosts_ip "$n")" \
            --listen-addr "$(hosts_ip "$n"):2377" "$(hosts_ip "$manager"):2377" >/dev/null; then
            _hosts_fail "h$n could not join the Swarm at $(hosts_ip "$manager"):2377" "Check that the hosts reach each other (scripts/hosts status; an h$n cut with 'cut' needs 'heal'), then run up again"
            return 1
        fi
        _hosts_log "swarm: h$n joined as a manager"
    done
    for ((n = 1; n <= HOSTS_COUNT; n++)); do
        read -ra st <<<"$(_hosts_swarm_state "$n")"
        ids+=" ${st[2]:-none}"
    done
    # Wait for every host Ready and Reachable; then nodes of this machine's earlier hosts that are
    # Down (a host made again from scratch) are removed, and each node carries its zone label.
    while :; do
        local ready=0 line
        while read -r id state mstatus; do
            [[ " $ids " == *" $id "* ]] || continue
            [[ "$state" == Ready && ("$mstatus" == Leader || "$mstatus" == Reachable) ]] && ready=$((ready + 1))
        done < <(hosts_docker "$manager" node ls --format '{{.ID}} {{.Status}} {{.ManagerStatus}}' 2>/dev/null)
        ((ready == HOSTS_COUNT)) && break
        if ((waited >= HOSTS_TIMEOUT * 2)); then
            _hosts_fail "only $ready of $HOSTS_COUNT hosts are Ready managers after ${HOSTS_TIMEOUT}s" "Look at 'docker -H $(hosts_sock "$manager") node ls' and the hosts' dockerd.log files, then run up again"
            return 1
        fi
        sleep 0.5
        waited=$((waited + 1))
    done
    while read -r id state line; do
        [[ " $ids " == *" $id "* || "$state" != Down ]] && continue
        hosts_docker "$manager" node demote "$id" >/dev/null 2>&1 || true
        hosts_docker "$manager" node rm --force "$id" >/dev/null 2>&1 &&
            _hosts_log "swarm: removed the stale node $id (Down, no host of that id)"
    done < <(hosts_docker "$manager" node ls --format '{{.ID}} {{.Status}} {{.Hostname}}' 2>/dev/null)
    for ((n = 1; n <= HOSTS_COUNT; n++)); do
        read -ra st <<<"$(_hosts_swarm_state "$n")"
        label="$(hosts_docker "$manager" node inspect "${st[2]}" --format '{{index .Spec.Labels "zone"}}' 2>/dev/null)"
        [[ "$label" == "h$n" ]] ||
            hosts_docker "$manager" node update --label-add "zone=h$n" --label-add "medisys.host=h$n" "${st[2]}" >/dev/null
    done
    _hosts_log "swarm: $HOSTS_COUNT managers Ready (cluster ${cluster:0:12})"
}

# --- images ------------------------------------------------------------------------------------

hosts_release() { tr -d '[:space:]' <"$HOSTS_ROOT/images/RELEASE"; }

# "repo:tag id" of the current release's images on the root engine.
_hosts_release_images() {
    local release
    release="$(hosts_release)"
    _hosts_root_docker images --format '{{.Repository}}:{{.Tag}} {{.ID}}' 2>/dev/null |
        grep -E "^medisys/[^ ]+:${release//./\\.} " | sort -u
}

# The release images host N lacks (or holds under another id), one "repo:tag" a line.
_hosts_missing_images() {
    local n="$1" wanted="$2"
    [[ -n "$wanted" ]] || return 0
    comm -23 <(printf '%s\n' "$wanted") <(hosts_docker "$n" images --format '{{.Repository}}:{{.Tag}} {{.ID}}' 2>/dev/null | sort -u) |
        awk '{print $1}'
}

# One `docker save` of the missing images, fed through tee into each lacking host's `docker load`.
hosts_images_up() {
    local wanted n tmp pid rc=0 t=$SECONDS
    local -a need=() names=() fifos=() pids=()
    if ! _hosts_root_docker info >/dev/null 2>&1; then
        _hosts_fail "the root engine ($HOSTS_ROOT_ENGINE) does not answer, so its images cannot be copied" "Run 'bash scripts/lib/docker-engine.sh', or 'scripts/hosts up --no-images'"
        return 1
    fi
    wanted="$(_hosts_release_images)"
    if [[ -z "$wanted" ]]; then
        _hosts_fail "the root engine has no medisys/*:$(hosts_release) images" "Build them with 'scripts/build-images', or run 'scripts/hosts up --no-images'"
        return 1
    fi
    for ((n = 1; n <= HOSTS_COUNT; n++)); do
        if [[ -n "$(_hosts_missing_images "$n" "$wanted")" ]]; then need+=("$n"); fi
    done
    if ((${#need[@]} == 0)); then
        _hosts_log "images: all $(wc -l <<<"$wanted") medisys/*:$(hosts_release) images present on every host"
        return 0
    fi
    mapfile -t names < <(for n in "${need[@]}"; do _hosts_missing_images "$n" "$wanted"; done | sort -u)
    _hosts_log "images: copying ${#names[@]} image(s) to $(printf 'h%s ' "${need[@]}")(one docker save, one load per host)"
    tmp="$(mktemp -d "$HOSTS_DIR/.images.XXXXXX")"
    for n in "${need[@]}"; do
        mkfifo "$tmp/h$n"
        hosts_docker "$n" load -q <"$tmp/h$n" >"$tmp/h$n.log" 2>&1 &
        pids+=($!)
        fifos+=("$tmp/h$n")
    done
    _hosts_root_docker save "${names[@]}" | tee "${fifos[@]}" >/dev/null || rc=1
    for pid in "${pids[@]}"; do wait "$pid" || rc=1; done
    if ((rc)); then
        _hosts_fail "copying the images failed ($(cat "$tmp"/h*.log 2>/dev/null | tail -n 1))" "Check free space under $HOSTS_DIR and run 'scripts/hosts up' again"
        rm -rf "$tmp"
        return 1
    fi
    rm -rf "$tmp"
    for n in "${need[@]}"; do
        if [[ -n "$(_hosts_missing_images "$n" "$wanted")" ]]; then
            _hosts_fail "h$n still lacks images after the load: $(_hosts_missing_images "$n" "$wanted" | tr '\n' ' ')" "Run 'scripts/hosts up' again; if it persists read $(hosts_home "$n")/dockerd.log"
            return 1
        fi
    done
    _hosts_log "images: ${#names[@]} image(s) loaded into ${#need[@]} host(s) in $((SECONDS - t))s"
}

# --- the commands ------------------------------------------------------------------------------

hosts_up() {
    local images=1 n rc=0 t0=$EPOCHREALTIME t
    local -a pids=()
    while (($#)); do
        case "$1" in
            --no-images) images=0 ;;
            *) _hosts_fail "up: unknown option '$1'" "Use 'scripts/hosts up [--no-images]'"; return 2 ;;
        esac
        shift
    done
    hosts_require_root up || return 1
    hosts_require_tools ip nsenter unshare setsid flock dockerd docker iptables openssl || return 1
    hosts_lock || return 1
    _hosts_check_owner || return 1
    mkdir -p "$HOSTS_DIR"
    if [[ -S /run/containerd/containerd.sock ]]; then
        _hosts_warn "a system containerd answers at /run/containerd/containerd.sock: the hosts' engines share it (each in its own containerd namespace medisys-hN) instead of starting their own"
    fi
    hosts_pki || return 1
    t=$SECONDS
    hosts_network_up || return 1
    _hosts_log "network: $HOSTS_BRIDGE $HOSTS_NET.1/24 with h1..h$HOSTS_COUNT ready ($((SECONDS - t))s)"
    t=$SECONDS
    # The engines start side by side; each waits for its own answer.
    for ((n = 1; n <= HOSTS_COUNT; n++)); do
        hosts_start_engine "$n" &
        pids+=($!)
    done
    for n in "${pids[@]}"; do wait "$n" || rc=1; done
    ((rc == 0)) || return 1
    _hosts_log "engines: $HOSTS_COUNT answering ($((SECONDS - t))s)"
    t=$SECONDS
    hosts_swarm_up || return 1
    _hosts_log "swarm: ready ($((SECONDS - t))s)"
    if ((images)); then
        hosts_images_up || return 1
    else
        _hosts_log "images: skipped (--no-images)"
    fi
    _hosts_log "up: $HOSTS_COUNT hosts ready in $(_hosts_elapsed "$t0") (scripts/hosts status; scripts/hosts env h1)"
}

hosts_down() {
    local purge=0 n t0=$EPOCHREALTIME
    local -a idx=() pids=()
    while (($#)); do
        case "$1" in
            --purge) purge=1 ;;
            *) _hosts_fail "down: unknown option '$1'" "Use 'scripts/hosts down [--purge]'"; return 2 ;;
        esac
        shift
    done
    hosts_require_root down || return 1
    hosts_require_tools ip flock || return 1
    hosts_lock || return 1
    _hosts_check_owner || return 1
    # Every host this state directory or this machine shows, whatever MEDISYS_HOSTS says now.
    for n in 1 2 3 4 5 6 7 8 9; do
        if [[ -d "$(hosts_home "$n")" || -e "/var/run/netns/$(hosts_ns "$n")" ]] || ((n <= HOSTS_COUNT)); then idx+=("$n"); fi
    done
    for n in "${idx[@]}"; do
        hosts_stop_engine "$n" &
        pids+=($!)
    done
    for n in "${pids[@]}"; do wait "$n" || true; done
    _hosts_log "down: engines stopped ($(_hosts_elapsed "$t0"))"
    hosts_network_down
    # What the engines mounted under the state directory (netns files, overlays), deepest first.
    local mnt
    while IFS= read -r mnt; do
        umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true
    done < <(awk -v d="$HOSTS_DIR/" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo | awk '{print length, $0}' | sort -rn | cut -d' ' -f2-)
    # The hosts' directories go side by side (image layers: many files each).
    local t1=$EPOCHREALTIME rc=0
    pids=()
    for n in "${idx[@]}"; do
        if [[ -d "$(hosts_home "$n")" ]]; then
            rm -rf "$(hosts_home "$n")" &
            pids+=($!)
        fi
    done
    for n in "${pids[@]}"; do wait "$n" || rc=1; done
    if ((rc)); then
        _hosts_fail "could not remove all of $HOSTS_DIR/h*" "Look for mounts below it ('grep $HOSTS_DIR /proc/mounts'), unmount them and run down again"
        return 1
    fi
    ((${#pids[@]} == 0)) || _hosts_log "down: removed the hosts' state directories ($(_hosts_elapsed "$t1"))"
    rm -rf "$HOSTS_DIR"/.images.* 2>/dev/null || true
    if ((purge)); then
        rm -rf "$HOSTS_PKI"
        _hosts_log "down: the CA and certificates are removed too (--purge)"
    fi
    rmdir "$HOSTS_DIR" 2>/dev/null || true
    if ((purge)) || [[ ! -d "$HOSTS_PKI" ]]; then
        _hosts_log "down: done in $(_hosts_elapsed "$t0")"
    else
        _hosts_log "down: done in $(_hosts_elapsed "$t0") (the CA and certificates stay in $HOSTS_PKI; 'down --purge' removes them)"
    fi
}

# One line per host; non-zero when any host is not healthy (images are counted, not judged:
# `up --no-images` is a legitimate state).
hosts_status() {
    local n ip link engine swarm images health bad=0 wanted="" total=0 missing nodes="" m id node
    local -a st
    hosts_require_tools docker ip || return 1
    if timeout 10 docker -H "$HOSTS_ROOT_ENGINE" version >/dev/null 2>&1; then
        wanted="$(_hosts_release_images)"
        [[ -z "$wanted" ]] || total="$(wc -l <<<"$wanted")"
    fi
    # The Swarm as one manager that has quorum sees it.
    for ((m = 1; m <= HOSTS_COUNT; m++)); do
        if nodes="$(timeout 10 docker -H "$(hosts_sock "$m")" node ls --format '{{.ID}} {{.Hostname}} {{.Status}} {{.ManagerStatus}}' 2>/dev/null)" && [[ -n "$nodes" ]]; then
            break
        fi
        nodes=""
    done
    for ((n = 1; n <= HOSTS_COUNT; n++)); do
        ip="$(hosts_ip "$n")" health=ok
        if ! ip link show "$(hosts_veth "$n")" >/dev/null 2>&1; then
            link=absent health=DOWN
        elif ! ip -o link show "$(hosts_veth "$n")" | grep -q '[<,]UP[,>]'; then
            link=cut health=CUT
        else
            link=up
        fi
        engine="$(timeout 5 docker -H "$(hosts_tcp "$n")" --tlsverify --tlscacert "$HOSTS_PKI/ca.pem" \
            --tlscert "$HOSTS_PKI/client-cert.pem" --tlskey "$HOSTS_PKI/client-key.pem" \
            version --format '{{.Server.Version}}' 2>/dev/null)" || engine=""
        if [[ -z "$engine" ]]; then
            if _hosts_answers "$n"; then engine="socket-only"; else engine="none"; fi
            [[ "$health" == ok ]] && health=DOWN
        fi
        # The node is found by its id when the engine answers, else by its host name (hN); a
        # stale node of the same name sorts after a Ready one.
        read -ra st <<<"$(_hosts_swarm_state "$n")"
        id="${st[2]:-}"
        node=""
        if [[ -n "$nodes" ]]; then
            node="$(awk -v id="$id" -v h="h$n" '($1 == id && id != "") {print; exit}' <<<"$nodes")"
            [[ -n "$node" ]] || node="$(awk -v h="h$n" '$2 == h' <<<"$nodes" | sort -k3,3r | head -n 1)"
        fi
        if [[ -n "$node" ]]; then
            swarm="$(awk '{print ($4 == "" ? "worker" : "manager-" tolower($4)) "/" tolower($3)}' <<<"$node")"
        elif [[ -z "$nodes" ]]; then
            swarm="no-manager-answers"
        else
            swarm="not-in-swarm"
        fi
        [[ "$swarm" =~ ^manager-(leader|reachable)/ready$ ]] || { [[ "$health" == ok ]] && health=SWARM; }
        if [[ "$engine" == none || "$engine" == socket-only ]] && ! _hosts_answers "$n"; then
            images="?"
        else
            missing="$(_hosts_missing_images "$n" "$wanted" | grep -c . || true)"
            images="$((total - missing))/$total"
        fi
        [[ "$health" == ok ]] || bad=1
        printf 'h%d  %-11s link=%-6s engine=%-15s swarm=%-24s images=%-6s %s\n' "$n" "$ip" "$link" "$engine" "$swarm" "$images" "$health"
    done
    return "$bad"
}

hosts_env() {
    local n
    n="$(hosts_index "${1:-}")" || return 1
    printf 'export DOCKER_HOST=%s DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH=%s\n' "$(hosts_tcp "$n")" "$(hosts_home "$n")/client"
}

hosts_cut() {
    local n="" action="$1"
    n="$(hosts_index "${2:-}")" || return 1
    hosts_require_root "$action" || return 1
    if ! ip link show "$(hosts_veth "$n")" >/dev/null 2>&1; then
        _hosts_fail "h$n has no link ($(hosts_veth "$n"))" "Run 'scripts/hosts up' first"
        return 1
    fi
    if [[ "$action" == cut ]]; then
        ip link set "$(hosts_veth "$n")" down && _hosts_log "h$n cut off: $(hosts_veth "$n") down"
    else
        ip link set "$(hosts_veth "$n")" up && _hosts_log "h$n healed: $(hosts_veth "$n") up"
    fi
}

# `config STACK`: the hosts and their client TLS into a Pulumi stack's config.
hosts_config() {
    local stack="${1:-}" n part file t=$SECONDS
    local -a pairs=()
    [[ -n "$stack" ]] || { _hosts_fail "config needs a stack name" "Run 'scripts/hosts config STACK'"; return 2; }
    if ! command -v pulumi >/dev/null 2>&1 && [[ -f "$HOSTS_ROOT/.state/env.sh" ]]; then
        # shellcheck disable=SC1091 # written by scripts/bootstrap
        source "$HOSTS_ROOT/.state/env.sh"
    fi
    hosts_require_tools pulumi || return 1
    if [[ ! -s "$HOSTS_PKI/ca.pem" || ! -s "$HOSTS_PKI/client-cert.pem" || ! -s "$HOSTS_PKI/client-key.pem" ]]; then
        _hosts_fail "no client certificate in $HOSTS_PKI" "Run 'scripts/hosts up' first (it makes the CA and certificates)"
        return 1
    fi
    cd "$HOSTS_ROOT" || return 1
    if ! pulumi config --stack "$stack" >/dev/null 2>&1; then
        _hosts_fail "Pulumi cannot read the config of stack '$stack'" "Create it with 'scripts/stack-select $stack' (after 'source .state/env.sh'), then run this again"
        return 1
    fi
    # Both keys are written whole: removed first, so a smaller MEDISYS_HOSTS leaves no stale entries.
    pulumi config rm --stack "$stack" medisys:hosts >/dev/null 2>&1 || true
    pulumi config rm --stack "$stack" medisys:host_tls >/dev/null 2>&1 || true
    for ((n = 1; n <= HOSTS_COUNT; n++)); do
        pairs+=(--plaintext "medisys:hosts[$((n - 1))].name=h$n"
            --plaintext "medisys:hosts[$((n - 1))].docker_host=$(hosts_tcp "$n")"
            --plaintext "medisys:hosts[$((n - 1))].public_address=$(hosts_ip "$n")"
            --plaintext "medisys:hosts[$((n - 1))].labels.zone=h$n")
    done
    if ! pulumi config set-all --stack "$stack" --path "${pairs[@]}" >/dev/null; then
        _hosts_fail "pulumi config set-all medisys:hosts failed on stack $stack" "Run 'pulumi config --stack $stack' to see why (the passphrase comes from .state/env.sh)"
        return 1
    fi
    # The PEMs go in through stdin: on the command line any local process could read the key.
    for ((n = 1; n <= HOSTS_COUNT; n++)); do
        for part in ca cert key; do
            case "$part" in
                ca) file="$HOSTS_PKI/ca.pem" ;;
                cert) file="$HOSTS_PKI/client-cert.pem" ;;
                *) file="$HOSTS_PKI/client-key.pem" ;;
            esac
            if ! pulumi config set --stack "$stack" --secret --raw --path "medisys:host_tls.h$n.$part" <"$file" >/dev/null; then
                _hosts_fail "pulumi config set --secret medisys:host_tls.h$n.$part failed on stack $stack" "Check the passphrase (source .state/env.sh) and run this again"
                return 1
            fi
        done
    done
    _hosts_log "config: stack $stack has medisys:hosts (h1..h$HOSTS_COUNT, tcp://$HOSTS_NET.1N:2376) and the secret medisys:host_tls ($((SECONDS - t))s)"
}
