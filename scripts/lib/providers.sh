#!/usr/bin/env bash
# The four provider plugins the program's SDKs ask for, installed in $PULUMI_HOME, and ONE line
# saying which ones the engine will run:
#   [toolchain] providers: upstream docker 5.2.0, random 4.21.4, postgresql 3.18.2, tls 5.6.2
#   [toolchain] providers: stand-ins docker 5.2.0, ... (downloads unreachable: github.com: ...)
#
#   PULUMI_HOME=DIR PULUMI_CLI=.../pulumi scripts/lib/providers.sh NAME=VERSION...
#
# Run by scripts/lib/toolchain.sh (its step 3). Per provider, the first that applies:
#   1. an upstream binary supplied as $MEDISYS_CACHE/toolchain/pulumi-resource-NAME-VERSION/pulumi-resource-NAME;
#   2. an upstream plugin already installed in $PULUMI_HOME (a download of an earlier run);
#   3. Pulumi's release archive, downloaded and checked against its published SHA-256 sums
#      (toolchain/upstream.py: PULUMI_PLUGIN_DOWNLOAD_URL_OVERRIDES is honoured as Pulumi does;
#      bounded by MEDISYS_DOWNLOAD_TIMEOUT, skipped when MEDISYS_OFFLINE=1), then
#      `pulumi plugin install resource NAME VERSION --file ARCHIVE`;
#   4. the project's stand-in (toolchain/providers/), with the reason the download was not used.
# `pulumi plugin ls` must then show every provider at its version.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
: "${PULUMI_HOME:?PULUMI_HOME names the Pulumi home to install into}"
: "${PULUMI_CLI:?PULUMI_CLI names the pulumi binary}"
export PULUMI_HOME
CACHE=${MEDISYS_CACHE:-$HOME/.cache/medisys-platform}
TC=$CACHE/toolchain
DOWNLOADS=$TC/downloads
# shellcheck source=scripts/lib/plugin-wrapper.sh
. "$ROOT/scripts/lib/plugin-wrapper.sh"

log() { printf '[toolchain] %s\n' "$*" >&2; }
die() { printf '[toolchain] ERROR: %s\n' "$*" >&2; exit 1; }

declare -A reason=()
to_fetch=()
for entry in "$@"; do
  name=${entry%%=*} version=${entry#*=}
  dir=$PULUMI_HOME/plugins/resource-$name-v$version
  supplied=$TC/pulumi-resource-$name-$version/pulumi-resource-$name
  if [[ -x $supplied ]]; then
    if ! cmp -s "$supplied" "$dir/pulumi-resource-$name"; then
      out=$("$PULUMI_CLI" plugin install resource "$name" "$version" --file "$supplied" --reinstall 2>&1) \
        || die "pulumi plugin install resource $name $version --file $supplied failed: $out"
    fi
    log "  $name $version: upstream binary from $supplied"
  elif [[ -f $dir/pulumi-resource-$name ]] && ! is_ours "$dir/pulumi-resource-$name"; then
    log "  $name $version: upstream plugin already installed"
  else
    to_fetch+=("$name=$version")
  fi
done

# Pulumi's release archives for the rest (one python3 run, so an unreachable host is tried once).
if ((${#to_fetch[@]})); then
  t0=$(date +%s%3N)
  # Whatever happens there, the stand-ins remain: a failed run is reported, never fatal.
  if ! results=$(python3 "$ROOT/toolchain/upstream.py" plugins "$DOWNLOADS" "${to_fetch[@]}"); then
    results=''
    for entry in "${to_fetch[@]}"; do
      results+="${entry%%=*}"$'\t'"${entry#*=}"$'\t'"stand-in"$'\t'"toolchain/upstream.py failed (see above)"$'\n'
    done
  fi
  while IFS=$'\t' read -r name version kind detail; do
    [[ -n $name ]] || continue
    dir=$PULUMI_HOME/plugins/resource-$name-v$version
    if [[ $kind == upstream ]]; then
      if out=$("$PULUMI_CLI" plugin install resource "$name" "$version" --file "$detail" --reinstall 2>&1); then
        rm -f "$detail"
        log "  $name $version: upstream plugin installed from Pulumi's release archive"
        continue
      fi
      kind=stand-in detail="pulumi plugin install --file $detail failed: $(tail -n 1 <<<"$out")"
      rm -f "$detail"
    fi
    reason[$name]=$detail
    mkdir -p "$dir"
    write_wrapper "$dir/pulumi-resource-$name" resource "$name" "$version"
    log "  $name $version: the project's stand-in (toolchain/providers/)"
  done <<<"$results"
  ms=$(( $(date +%s%3N) - t0 ))
  log "  (download attempt: $(( ms / 1000 )).$(printf '%03d' $(( ms % 1000 )))s)"
fi

# What the engine will really see: every provider at its pinned version.
have=$("$PULUMI_CLI" plugin ls --json 2>&1) || die "\`pulumi plugin ls --json\` failed: $have"
missing=$(python3 -c '
import json, sys
found = {(p.get("name"), str(p.get("version", "")).lstrip("v")) for p in json.load(sys.stdin) or [] if p.get("kind") == "resource"}
print(" ".join(e for e in sys.argv[1:] if tuple(e.split("=", 1)) not in found))' "$@" <<<"$have")
[[ -z $missing ]] || die "pulumi plugin ls does not show these resource plugins in $PULUMI_HOME: $missing"

# The one line.
upstream=() standins=() why=()
for entry in "$@"; do
  name=${entry%%=*} version=${entry#*=}
  if is_ours "$PULUMI_HOME/plugins/resource-$name-v$version/pulumi-resource-$name"; then
    standins+=("$name $version")
    why+=("${reason[$name]:-no download result}")
  else
    upstream+=("$name $version")
  fi
done
join() { local IFS=$'\x1f'; local s="$*"; printf '%s' "${s//$'\x1f'/, }"; }
line=''
((${#upstream[@]})) && line="upstream $(join "${upstream[@]}")"
if ((${#standins[@]})); then
  mapfile -t distinct < <(printf '%s\n' "${why[@]}" | sort -u)
  if ((${#distinct[@]} == 1)); then
    causes=${distinct[0]}
  else
    causes=''
    for i in "${!standins[@]}"; do causes+="${causes:+; }${standins[$i]%% *}: ${why[$i]}"; done
  fi
  line+="${line:+; }stand-ins $(join "${standins[@]}") ($causes)"
fi
log "providers: $line"
