# Sourced by scripts/lib/toolchain.sh and scripts/lib/providers.sh: the executables through which the
# engine runs the project's own plugins (toolchain/plugin.py), and how to recognise them.
MARKER='# medisys-platform plugin wrapper'
# write_wrapper FILE ARGS...: an executable that runs toolchain/plugin.py ARGS with the project's venv.
# The checkout is taken from MEDISYS_ROOT (exported by env.sh), so one cache serves every clone.
write_wrapper() {
  local file=$1 tmp
  shift
  tmp=$(mktemp "$file.XXXXXX")
  cat >"$tmp" <<WRAPPER
#!/bin/sh
$MARKER (scripts/lib/toolchain.sh)
root=\${MEDISYS_ROOT:-$ROOT}
exec "\$root/venv/bin/python" "\$root/toolchain/plugin.py" $* "\$@"
WRAPPER
  chmod 0755 "$tmp"
  mv -f "$tmp" "$file"
}
is_ours() { [[ -f $1 ]] && grep -q "^$MARKER" "$1"; }
