#!/usr/bin/env bash
# Makes the Pulumi toolchain available offline: the CLI, a Python language host and the four
# provider plugins the program's SDKs ask for.
#
#   scripts/lib/toolchain.sh            # progress on stderr, the exports on stdout
#
# What it does, in order (each step is skipped when its result is already in the cache):
#   1. CLI: a `pulumi` that reports v$PULUMI_VERSION: the copy kept in
#      $MEDISYS_CACHE/toolchain/pulumi-<version>/bin, else one on PATH, else Pulumi's release
#      archive when get.pulumi.com or GitHub answer (checked against its published SHA-256 sums,
#      toolchain/upstream.py), else built here from the pinned Go module
#      github.com/pulumi/pulumi/pkg/v3 through the Go module proxy (~10 min of compiling on
#      2 cores, once; modules and build cache stay in $MEDISYS_CACHE/go).
#   2. Python language host: Pulumi's own `pulumi-language-python` when it sits beside the CLI,
#      or from the release archive when it can be downloaded. Its Go module is refused by this
#      workplace's proxy, so otherwise the project's host (toolchain/language_host.py) is
#      installed there, with Pulumi's pulumi-language-python-exec shim from the pulumi/sdk/v3 module.
#   3. Providers, in a Pulumi home of the project's own ($MEDISYS_CACHE/toolchain/pulumi-home, so
#      nothing here shadows another project's plugins), by scripts/lib/providers.sh: an upstream
#      binary supplied in the cache, an upstream plugin already installed, Pulumi's release archive
#      (sums checked; PULUMI_PLUGIN_DOWNLOAD_URL_OVERRIDES honoured), else the project's stand-in
#      (toolchain/providers/). One line, `providers: ...`, says which the engine will run.
#   Downloads give up after MEDISYS_DOWNLOAD_TIMEOUT seconds without progress (default 5), so an
#   offline machine decides in about a second; MEDISYS_OFFLINE=1 does not try them at all.
#   4. Writes the exports (PATH, PULUMI_HOME, offline switches) to stdout and $ENV_FILE.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PULUMI_VERSION=3.276.0
# name and version the pinned Python SDKs ask the engine for (requirements.txt)
PROVIDERS=("docker 5.2.0" "random 4.21.4" "postgresql 3.18.2" "tls 5.6.2")
CLI_MODULE=github.com/pulumi/pulumi/pkg/v3
SDK_MODULE=github.com/pulumi/pulumi/sdk/v3
# pkg/v3's go.mod replaces the clipboard module with this fork; `go build` in a wrapper module
# only honours replaces written there.
CLIPBOARD_FORK=github.com/tgummerer/clipboard@v0.0.0-20241001131231-d02d263e614e
GO_MIN=1.26.6 # the `go` directive of pkg/v3 v3.276.0
PROXY_TIMEOUT=${MEDISYS_PROXY_TIMEOUT:-120}

CACHE=${MEDISYS_CACHE:-$HOME/.cache/medisys-platform}
TC=$CACHE/toolchain
CLI_BIN=$TC/pulumi-$PULUMI_VERSION/bin
ENV_FILE=$TC/env.sh
export PULUMI_HOME=${PULUMI_HOME:-$TC/pulumi-home}
PYTHON=$ROOT/venv/bin/python

export GOPATH=$CACHE/go/path
export GOMODCACHE=$CACHE/go/mod
export GOCACHE=$CACHE/go/build
export GOFLAGS=-mod=mod
export GOTOOLCHAIN=local
export GOPROXY=${GOPROXY:-https://proxy.golang.org,direct}
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
cli_version_ok() {
  local v
  v=$("$1/pulumi" version 2>/dev/null | tr -d '[:space:]') || return 1
  [[ $v == "v$PULUMI_VERSION" ]]
}

# ---------------------------------------------------------------------------------------------
# 1. The CLI

check_go() {
  command -v go >/dev/null 2>&1 || die "no \`go\` on PATH: install Go >= $GO_MIN to build pulumi v$PULUMI_VERSION" \
    "(the linux-amd64 tarball from https://go.dev/dl/ unpacked to /usr/local/go, then put /usr/local/go/bin on PATH)."
  local gov
  gov=$(go env GOVERSION 2>/dev/null || true)
  gov=${gov#go}
  [[ $(printf '%s\n%s\n' "$GO_MIN" "${gov%%[-+ ]*}" | sort -V | head -n1) == "$GO_MIN" ]] \
    || die "go $gov is too old: pulumi v$PULUMI_VERSION needs Go >= $GO_MIN."
}

build_cli() {
  check_go
  local work=$TC/build/cli-$PULUMI_VERSION out
  mkdir -p "$work" "$CLI_BIN"
  cd "$work"
  if [[ ! -f go.mod ]] || ! grep -q "$CLI_MODULE v$PULUMI_VERSION" go.mod; then
    rm -f go.mod go.sum
    go mod init medisys.local/pulumi-cli >/dev/null 2>&1
    go mod edit -replace "github.com/atotto/clipboard=$CLIPBOARD_FORK"
    log "  fetching $CLI_MODULE@v$PULUMI_VERSION and its dependencies (GOPROXY=$GOPROXY)"
    if ! out=$(timeout 1800 go get "$CLI_MODULE@v$PULUMI_VERSION" "$SDK_MODULE@v$PULUMI_VERSION" 2>&1); then
      rm -f go.mod go.sum
      die "the Go module proxy did not give $CLI_MODULE@v$PULUMI_VERSION and its dependencies:" \
        "$(tail -n 4 <<<"$out")" \
        "Point GOPROXY at a mirror that serves them, or put a pulumi v$PULUMI_VERSION on PATH."
    fi
  fi
  log "  compiling pulumi v$PULUMI_VERSION (once; about 10 minutes on 2 cores)"
  if ! out=$(go build -trimpath -tags "osusergo grpcnotrace" \
    -ldflags "-s -w -X $SDK_MODULE/go/common/version.Version=v$PULUMI_VERSION" \
    -o "$CLI_BIN/pulumi.tmp" "$CLI_MODULE/cmd/pulumi" 2>&1); then
    die "go build of $CLI_MODULE/cmd/pulumi failed:" "$(tail -n 8 <<<"$out")"
  fi
  mv -f "$CLI_BIN/pulumi.tmp" "$CLI_BIN/pulumi"
  # The binary is what is kept; the ~1.7 GB of compiled packages would only speed up a rebuild
  # of the same pinned version, which never happens while the binary is cached.
  go clean -cache
  cd "$ROOT"
}

# Pulumi's release archive of the CLI (with its language hosts), downloaded and checked against the
# published sums by toolchain/upstream.py; tried once per run. Sets OFFICIAL to its path, or
# OFFICIAL_WHY to why not.
OFFICIAL='' OFFICIAL_WHY=''
official_archive() {
  [[ -n $OFFICIAL || -n $OFFICIAL_WHY ]] && { [[ -n $OFFICIAL ]]; return; }
  local err
  err=$(mktemp)
  if OFFICIAL=$(python3 "$ROOT/toolchain/upstream.py" cli "$TC/downloads" "$PULUMI_VERSION" 2>"$err"); then
    rm -f "$err"
    return 0
  fi
  OFFICIAL='' OFFICIAL_WHY=$(tail -n 1 "$err")
  rm -f "$err"
  return 1
}

step "pulumi CLI v$PULUMI_VERSION"
if [[ -x $CLI_BIN/pulumi ]] && cli_version_ok "$CLI_BIN"; then
  step_done "using $CLI_BIN (cached)"
elif found=$(command -v pulumi 2>/dev/null) && cli_version_ok "$(dirname "$(readlink -f "$found")")"; then
  mkdir -p "$CLI_BIN"
  ln -sf "$(readlink -f "$found")" "$CLI_BIN/pulumi"
  step_done "using $found"
elif official_archive && mkdir -p "$CLI_BIN" && tar -xzf "$OFFICIAL" -C "$CLI_BIN" --strip-components=1 \
  && cli_version_ok "$CLI_BIN"; then
  step_done "Pulumi's release archive $(basename "$OFFICIAL") (sha256 verified) into $CLI_BIN"
else
  [[ -n $OFFICIAL_WHY ]] && log "  Pulumi's release archive not used: $OFFICIAL_WHY"
  build_cli
  cli_version_ok "$CLI_BIN" || die "the pulumi built in $CLI_BIN does not report v$PULUMI_VERSION"
  step_done "built into $CLI_BIN"
fi

# ---------------------------------------------------------------------------------------------
# 2. The Python language host, beside the CLI (where the engine looks for bundled plugins)

# shellcheck source=scripts/lib/plugin-wrapper.sh
. "$ROOT/scripts/lib/plugin-wrapper.sh"

step "Python language host"
langhost=$CLI_BIN/pulumi-language-python
if [[ -x $langhost ]] && ! is_ours "$langhost"; then
  step_done "Pulumi's own, beside the CLI"
elif official_archive && tar -xzf "$OFFICIAL" -C "$CLI_BIN" --strip-components=1 \
  pulumi/pulumi-language-python pulumi/pulumi-language-python-exec && ! is_ours "$langhost"; then
  step_done "Pulumi's own, from the release archive $(basename "$OFFICIAL") (sha256 verified)"
else
  [[ -n $OFFICIAL_WHY ]] && log "  Pulumi's language host not downloaded: $OFFICIAL_WHY"
  shim=$GOMODCACHE/$SDK_MODULE@v$PULUMI_VERSION/python/cmd/pulumi-language-python-exec
  if [[ ! -f $shim ]]; then
    check_go
    (cd / && timeout "$PROXY_TIMEOUT" go mod download "$SDK_MODULE@v$PULUMI_VERSION") >/dev/null 2>&1 \
      || die "could not download $SDK_MODULE@v$PULUMI_VERSION (for pulumi-language-python-exec) from GOPROXY=$GOPROXY"
  fi
  install -m 0755 "$shim" "$CLI_BIN/pulumi-language-python-exec"
  write_wrapper "$langhost" language-host "$PULUMI_VERSION" "--exec-shim=$CLI_BIN/pulumi-language-python-exec"
  step_done "the project's host (toolchain/language_host.py)"
fi

# ---------------------------------------------------------------------------------------------
# 3. Provider plugins

step "provider plugins in $PULUMI_HOME"
PULUMI_CLI=$CLI_BIN/pulumi bash "$ROOT/scripts/lib/providers.sh" "${PROVIDERS[@]/ /=}"
command -v psql >/dev/null 2>&1 || {
  log "  installing postgresql-client (psql) for the postgresql provider"
  { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-client >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-client >/dev/null 2>&1; }; } \
    || die "psql is missing and apt-get could not install postgresql-client: install it (apt-get install postgresql-client)"
}
step_done "all ${#PROVIDERS[@]} present"

[[ -n $OFFICIAL ]] && rm -f "$OFFICIAL"

# ---------------------------------------------------------------------------------------------
# 4. The environment for callers

exports=$(cat <<EOF
export PATH="$CLI_BIN:\$PATH"
export PULUMI_HOME="$PULUMI_HOME"
export MEDISYS_ROOT="$ROOT"
export PULUMI_SKIP_UPDATE_CHECK=true
export PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK=true
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
export PULUMI_IGNORE_AMBIENT_PLUGINS=true
EOF
)
mkdir -p "$TC"
tmp=$(mktemp "$ENV_FILE.XXXXXX")
{
  echo "# Written by scripts/lib/toolchain.sh: pulumi v$PULUMI_VERSION, offline."
  echo "$exports"
} >"$tmp"
chmod 0644 "$tmp"
mv -f "$tmp" "$ENV_FILE"

total=$(( $(now_ms) - T_START ))
log "toolchain ready in $(( total / 1000 )).$(printf '%03d' $(( total % 1000 )))s"
printf '%s\n' "$exports"
