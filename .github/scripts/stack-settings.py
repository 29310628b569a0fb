"""Prints what a CI job needs to reach a stack, as key=value lines, from Pulumi.<stack>.yaml.

    venv/bin/python .github/scripts/stack-settings.py STACK

The stack file stays the only source: the Docker hosts (`medisys:hosts`), a client certificate
directory (`docker:certPath`), and where pulumi-postgresql connects (`medisys:postgres.admin_host`
and `admin_port`, validated by config.py). When that is the loopback address, the job must open
a tunnel to the primary, whose address the program derives from the database subnet.

Keys: docker_host, docker_cert_path, ssh_target (user@host of the first ssh:// Docker host),
ssh_targets (every ssh:// host, space-separated),
ssh_port, db_admin_host, db_admin_port, db_tunnel (true when a loopback tunnel is needed),
db_primary (host:port at the far end of that tunnel: the leader-following endpoint).
"""

from __future__ import annotations

import sys
from pathlib import Path
from urllib.parse import urlsplit

import yaml

ROOT = Path(__file__).resolve().parents[2]
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def settings(stack: str) -> dict[str, str]:
    # The program's own validation and address plan, so CI and `pulumi up` agree.
    import config
    import placement
    from components.postgres import PORT

    path = ROOT / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        raise SystemExit(f"stack-settings: {path.name} does not exist: pass one of dev, staging, prod")
    values = (yaml.safe_load(path.read_text()) or {}).get("config") or {}
    raw = {key.split(":", 1)[1]: value for key, value in values.items() if key.startswith("medisys:")}
    cfg = config.load(raw, stack)

    # Every host of medisys:hosts; docker_host/ssh_target name the first (the Swarm's first manager).
    engines = [h.docker_host or "" for h in cfg.hosts]
    docker_host = engines[0]
    targets = []
    for engine in engines:
        url = urlsplit(engine)
        if url.scheme == "ssh":
            targets.append((f"{url.username}@{url.hostname}" if url.username else str(url.hostname), str(url.port or "")))
    ssh_target, ssh_port = targets[0] if targets and engines[0].startswith("ssh://") else ("", "")

    admin_host = cfg.postgres.admin_host or ""
    tunnel = admin_host in LOOPBACK
    return {
        "docker_host": docker_host,
        "docker_cert_path": str(values.get("docker:certPath", "")),
        "ssh_target": ssh_target,
        "ssh_targets": " ".join(t for t, _ in targets),
        "ssh_port": ssh_port,
        "db_admin_host": admin_host,
        "db_admin_port": str(cfg.postgres.admin_port),
        "db_tunnel": "true" if tunnel else "false",
        "db_primary": f"{placement.plan(cfg)['postgres-proxy'].on('database')}:{PORT}" if tunnel else "",
    }


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(ROOT))
    import config

    if len(argv) != 2:
        print("usage: stack-settings.py STACK", file=sys.stderr)
        return 2
    try:
        found = settings(argv[1])
    except config.ConfigError as err:
        print(f"stack-settings: {err}", file=sys.stderr)
        return 1
    for key, value in found.items():
        if "\n" in value:
            print(f"stack-settings: {key} of stack {argv[1]} spans lines; fix Pulumi.{argv[1]}.yaml", file=sys.stderr)
            return 1
        print(f"{key}={value}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
