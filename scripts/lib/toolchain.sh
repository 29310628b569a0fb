#!/usr/bin/env bash
# Makes the Pulumi toolchain available offline: the CLI, the Python language host and the
# provider plugins, at the versions the Python SDKs from PyPI ask for.
#
#   scripts/lib/toolchain.sh            # progress on stderr, the exports on stdout
#   . "${MEDISYS_CACHE:-$HOME/.cache/medisys-platform}/toolchain/env.sh"
#
# What it does, in order:
#   1. CLI: uses a `pulumi` that reports exactly v$PULUMI_VERSION and has the Python language host
#      (pulumi-language-python + pulumi-language-python-exec) beside it: first the copy kept in
#      $MEDISYS_CACHE/toolchain/pulumi-<version>/bin, then one found on PATH.
#   2. Plugins: skips every provider that `pulumi plugin ls` already shows at its pinned version;
#      installs the others with `pulumi plugin install resource NAME VERSION --file BIN` from
#      $MEDISYS_CACHE/toolchain/pulumi-resource-<name>-<version>/pulumi-resource-<name>.
#   3. Writes $MEDISYS_CACHE/toolchain/env.sh (atomically) and prints the same exports.
#
# When something is missing it checks what building it from Go modules would need (Go, the
# module proxy, and whether the proxy serves each module) and stops with one clear
# "[toolchain] ERROR:" message. The Go module proxy of this workplace refuses the modules that
# hold the CLI (github.com/pulumi/pulumi/pkg/v3@v3.272.0), the Python language host and all four
# providers (403 "This module version is not available"), so no build recipe is run here: see
# the message for the ways to supply the binaries.
set -euo pipefail

PULUMI_VERSION=3.272.0
# name, version, Go module of the provider binary (main package ./cmd/pulumi-resource-<name>)
PROVIDERS=(
  "docker 5.2.0 github.com/pulumi/pulumi-docker/provider/v5"
  "random 4.21.4 github.com/pulumi/pulumi-random/provider/v4"
  "postgresql 3.18.2 github.com/pulumi/pulumi-postgresql/provider/v3"
  "tls 5.6.2 github.com/pulumi/pulumi-tls/provider/v5"
)
CLI_MODULE=github.com/pulumi/pulumi/pkg/v3
SDK_MODULE=github.com/pulumi/pulumi/sdk/v3
LANGHOST_MODULE=github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3
# `go` directive of github.com/pulumi/pulumi/sdk/v3 v3.272.0's go.mod; with GOTOOLCHAIN=local
# an older go refuses to build it.
GO_MIN=1.26.6
PROXY_TIMEOUT=${MEDISYS_PROXY_TIMEOUT:-60}

CACHE=${MEDISYS_CACHE:-$HOME/.cache/medisys-platform}
TC=$CACHE/toolchain
CLI_BIN=$TC/pulumi-$PULUMI_VERSION/bin
ENV_FILE=$TC/env.sh

# Keep every Go download and build product inside the cache, keyed by nothing but the cache root
# (module versions are immutable, so one module cache serves every pin).
export GOPATH=$CACHE/go/path
export GOMODCACHE=$CACHE/go/mod
export GOCACHE=$CACHE/go/build
export GOFLAGS=-mod=mod
export GOTOOLCHAIN=local
export GOPROXY=${GOPROXY:-https://proxy.golang.org,direct}

# The CLI must never phone home or fetch plugins, not even while this script runs it.
export PULUMI_SKIP_UPDATE_CHECK=true
export PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK=true
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
export PULUMI_IGNORE_AMBIENT_PLUGINS=true

log() { printf '[toolchain] %s\n' "$*" >&2; }
die() {
  printf '[toolchain] ERROR: %s\n' "$1" >&2
  shift
  local line
  for line in "$@"; do printf '[toolchain]        %s\n' "$line" >&2; done
  exit 1
}
now_ms() { date +%s%3N; }
T_START=$(now_ms)
STEP_NAME='' STEP_T0=0
step() { STEP_NAME=$1; STEP_T0=$(now_ms); log "$1 ..."; }
step_done() {
  local ms=$(( $(now_ms) - STEP_T0 ))
  log "$STEP_NAME: ${1:-done} ($(( ms / 1000 )).$(printf '%03d' $(( ms % 1000 )))s)"
}

# ---------------------------------------------------------------------------------------------
# 1. The CLI and the Python language host

# cli_complete DIR: DIR holds pulumi, the language host and its exec script, all executable.
cli_complete() {
  [[ -x $1/pulumi && -x $1/pulumi-language-python && -x $1/pulumi-language-python-exec ]]
}
# cli_version_ok DIR: DIR/pulumi reports exactly v$PULUMI_VERSION.
cli_version_ok() {
  local v
  v=$("$1/pulumi" version 2>/dev/null | tr -d '[:space:]') || return 1
  [[ $v == "v$PULUMI_VERSION" ]]
}

PULUMI_DIR=''
step "pulumi CLI v$PULUMI_VERSION + Python language host"
if cli_complete "$CLI_BIN" && { [[ -f $CLI_BIN/.complete ]] || cli_version_ok "$CLI_BIN"; }; then
  # .complete records that `pulumi version` was checked once; a warm run does not start it again.
  [[ -f $CLI_BIN/.complete ]] || : >"$CLI_BIN/.complete"
  PULUMI_DIR=$CLI_BIN
  step_done "using $CLI_BIN (cached)"
elif found=$(command -v pulumi 2>/dev/null); then
  # The engine looks for the language host beside the resolved pulumi binary.
  dir=$(dirname "$(readlink -f "$found")")
  if cli_complete "$dir" && cli_version_ok "$dir"; then
    PULUMI_DIR=$dir
    step_done "using $dir (already installed)"
  else
    log "  $found is not usable as is: wants v$PULUMI_VERSION with pulumi-language-python and"
    log "  pulumi-language-python-exec beside it (found version '$("$found" version 2>/dev/null || true)')"
  fi
fi

# ---------------------------------------------------------------------------------------------
# 2. Provider plugins

pulumi_home=${PULUMI_HOME:-$HOME/.pulumi}
# installed_plugins: "name version" lines for resource plugins, from `pulumi plugin ls --json`.
installed_plugins() {
  local json
  json=$("$PULUMI_DIR/pulumi" plugin ls --json 2>&1) \
    || die "\`pulumi plugin ls --json\` failed (PULUMI_HOME=$pulumi_home):" "$json"
  python3 -c '
import json, sys
try:
    data = json.load(sys.stdin) or []
except ValueError:
    data = []
for p in data:
    if p.get("kind") == "resource":
        print(p.get("name", ""), str(p.get("version", "")).lstrip("v"))
' <<<"$json"
}
provider_bin() { printf '%s/pulumi-resource-%s-%s/pulumi-resource-%s' "$TC" "$1" "$2" "$1"; }

MISSING_PROVIDERS=()
if [[ -n $PULUMI_DIR ]]; then
  step "provider plugins in $pulumi_home"
  have=$(installed_plugins)
  for entry in "${PROVIDERS[@]}"; do
    read -r name version _ <<<"$entry"
    if grep -qx "$name $version" <<<"$have"; then
      log "  $name $version: already installed"
      continue
    fi
    bin=$(provider_bin "$name" "$version")
    if [[ -f $bin && -x $bin ]]; then
      log "  $name $version: installing from $bin"
      if ! out=$("$PULUMI_DIR/pulumi" plugin install resource "$name" "$version" --file "$bin" 2>&1); then
        die "pulumi plugin install resource $name $version --file $bin failed:" "$out"
      fi
    else
      MISSING_PROVIDERS+=("$entry")
    fi
  done
  if ((${#MISSING_PROVIDERS[@]} == 0)); then
    # Verify what the engine will really see.
    have=$(installed_plugins)
    for entry in "${PROVIDERS[@]}"; do
      read -r name version _ <<<"$entry"
      grep -qx "$name $version" <<<"$have" \
        || die "pulumi plugin ls does not show resource plugin $name $version after installing it"
    done
    step_done "all ${#PROVIDERS[@]} present"
  else
    step_done "${#MISSING_PROVIDERS[@]} missing"
  fi
else
  MISSING_PROVIDERS=("${PROVIDERS[@]}")
fi

# ---------------------------------------------------------------------------------------------
# 3. Anything missing: check what a build from Go modules needs, and say why it cannot go on.

if [[ -z $PULUMI_DIR ]] || ((${#MISSING_PROVIDERS[@]} > 0)); then
  step "checking the Go toolchain and the module proxy ($GOPROXY)"
  if ! command -v go >/dev/null 2>&1; then
    die "no \`go\` on PATH. Install Go >= $GO_MIN (the pulumi v$PULUMI_VERSION modules declare 'go $GO_MIN'):" \
      "the linux-amd64 tarball from https://go.dev/dl/ unpacked to /usr/local/go, then" \
      "export PATH=/usr/local/go/bin:\$PATH (Debian bookworm's golang-go is 1.19: too old)."
  fi
  gov=$(go env GOVERSION 2>/dev/null || true)
  gov=${gov#go}
  if [[ $(printf '%s\n%s\n' "$GO_MIN" "${gov%%[-+ ]*}" | sort -V | head -n1) != "$GO_MIN" ]]; then
    die "go $gov is too old: the pulumi v$PULUMI_VERSION modules need Go >= $GO_MIN." \
      "Install a newer Go (https://go.dev/dl/), or with any go >= 1.21 let it fetch one through the" \
      "module proxy: GOTOOLCHAIN=go$GO_MIN go version, then put that go on PATH."
  fi
  probe=$(mktemp)
  trap 'rm -f "$probe"' EXIT
  # `go list -m MODULE@VERSION` answers from the module cache once it has the module; the version
  # list is always fetched, so it shows whether the proxy answers now.
  if ! (cd / && timeout "$PROXY_TIMEOUT" go list -m -versions "$SDK_MODULE") >"$probe" 2>&1 \
    || ! grep -q -- " v$PULUMI_VERSION\b" "$probe"; then
    die "the Go module proxy gave no version list with v$PULUMI_VERSION for $SDK_MODULE (timeout ${PROXY_TIMEOUT}s)." \
      "GOPROXY=$GOPROXY. Check that this machine reaches it, or point GOPROXY at a reachable" \
      "mirror (e.g. GOPROXY=https://goproxy.internal.example,off) and run this script again." \
      "go said: $(tail -n 3 "$probe" | tr '\n' ' ')"
  fi

  # Which of the modules a build needs does the proxy serve? A refusal (403/404/410) is final.
  needed=()
  [[ -z $PULUMI_DIR ]] && needed+=("$CLI_MODULE@v$PULUMI_VERSION" "$LANGHOST_MODULE")
  for entry in "${MISSING_PROVIDERS[@]}"; do
    read -r name version module <<<"$entry"
    needed+=("$module@v$version")
  done
  refused=()
  for m in "${needed[@]}"; do
    if [[ $m == *@* ]]; then
      args=(-m "$m")
    else
      # The language host module has no version tags of its own: ask for its version list.
      args=(-m -versions "$m")
    fi
    rc=0
    (cd / && timeout "$PROXY_TIMEOUT" go list "${args[@]}") >"$probe" 2>&1 || rc=$?
    if ((rc == 124)); then
      die "the Go module proxy did not answer for $m within ${PROXY_TIMEOUT}s (GOPROXY=$GOPROXY)." \
        "Run this script again when it answers, or point GOPROXY at a reachable mirror."
    elif ((rc != 0)); then
      reason=$(grep -o -m1 -E '[0-9]{3} [A-Z][A-Za-z ]+' "$probe" || true)
      resp=$(grep -o -m1 -E 'server response: .*' "$probe" || true)
      reason="${reason:-$(tail -n1 "$probe")}${resp:+, ${resp#server response: }}"
      refused+=("  $m: $reason")
      log "  $m: NOT served: $reason"
    else
      log "  $m: served"
    fi
  done
  step_done

  what=()
  [[ -z $PULUMI_DIR ]] && what+=("pulumi v$PULUMI_VERSION + pulumi-language-python")
  for entry in "${MISSING_PROVIDERS[@]}"; do
    read -r name version _ <<<"$entry"
    what+=("pulumi-resource-$name $version")
  done
  hints=(
    "Supply the binaries and run this script again; it then only checks and installs them:"
    "  - a pulumi v$PULUMI_VERSION install whose bin dir holds pulumi, pulumi-language-python and"
    "    pulumi-language-python-exec: on PATH, or those three files copied to $CLI_BIN/;"
    "  - each provider either already installed in $pulumi_home/plugins (e.g. copied from a machine"
    "    with internet after \`pulumi plugin install resource NAME VERSION\` there) or as the"
    "    executable $TC/pulumi-resource-NAME-VERSION/pulumi-resource-NAME."
  )
  if ((${#refused[@]} > 0)); then
    die "cannot build ${what[*]}: GOPROXY=$GOPROXY refuses modules they are built from:" \
      "${refused[@]}" \
      "A GOPROXY mirror that serves these module versions would be needed to build them here." \
      "${hints[@]}"
  fi
  die "cannot provide ${what[*]}: the proxy serves the modules, but this script has no build" \
    "recipe for them (it was written where the proxy refused them, so none could be verified)." \
    "${hints[@]}"
fi

# ---------------------------------------------------------------------------------------------
# 4. The environment for callers

step "writing $ENV_FILE"
mkdir -p "$TC"
exports=$(cat <<EOF
export PATH="$PULUMI_DIR:\$PATH"
export PULUMI_SKIP_UPDATE_CHECK=true
export PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK=true
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
export PULUMI_IGNORE_AMBIENT_PLUGINS=true
EOF
)
# PULUMI_IGNORE_AMBIENT_PLUGINS: no stray pulumi-resource-* on PATH replaces the pinned plugins;
# the language host is still found, beside the pulumi binary.
if [[ -n ${PULUMI_HOME:-} ]]; then
  exports+=$'\n'"export PULUMI_HOME=\"$PULUMI_HOME\""
fi
tmp=$(mktemp "$ENV_FILE.XXXXXX")
{
  echo "# Written by scripts/lib/toolchain.sh: pulumi v$PULUMI_VERSION, offline."
  echo "$exports"
} >"$tmp"
chmod 0644 "$tmp"
mv -f "$tmp" "$ENV_FILE"
step_done

total=$(( $(now_ms) - T_START ))
log "toolchain ready in $(( total / 1000 )).$(printf '%03d' $(( total % 1000 )))s; source $ENV_FILE"
printf '%s\n' "$exports"
