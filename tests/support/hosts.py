"""The three Docker hosts of this machine (scripts/hosts) as a stack sees them: `medisys:hosts`
and the secret `medisys:host_tls`, read from the state `scripts/hosts up` leaves in .state/hosts."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
HOSTS_DIR = Path(os.environ.get("MEDISYS_HOSTS_DIR", ROOT / ".state" / "hosts"))
NAMES = ("h1", "h2", "h3")


def address(name: str) -> str:
    return f"10.99.0.1{name.removeprefix('h')}"


def hosts_config() -> list[dict[str, Any]]:
    return [{"name": n, "docker_host": f"tcp://{address(n)}:2376", "public_address": address(n), "labels": {"zone": n}}
            for n in NAMES]


def host_tls_secret() -> str:
    """The client certificate every host accepts, as the JSON text of `medisys:host_tls`."""
    pki = HOSTS_DIR / "pki"
    parts = {"ca": (pki / "ca.pem").read_text(), "cert": (pki / "client-cert.pem").read_text(),
             "key": (pki / "client-key.pem").read_text()}
    return json.dumps({n: parts for n in NAMES})


def docker_on(name: str, *args: str, check: bool = True, timeout: int = 120) -> str:
    """`docker` against one host's engine (its unix socket: root on this machine)."""
    return subprocess.run(["docker", "-H", f"unix://{HOSTS_DIR / name / 'docker.sock'}", *args],
                          capture_output=True, text=True, check=check, timeout=timeout).stdout


def hosts(action: str, *args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(ROOT / "scripts" / "hosts"), action, *args], capture_output=True, text=True,
                          timeout=timeout, check=False)


def remove_leftovers(prefix: str) -> list[str]:
    """Remove, on every host, what an interrupted run of `prefix` left (containers, then networks
    and volumes: a killed session never ran its destroy)."""
    removed = []
    for name in NAMES:
        for kind in ("container", "network", "volume"):
            listing = ["ls", "--format", "{{.Names}}" if kind == "container" else "{{.Name}}"] + (["-a"] if kind == "container" else [])
            stale = [n for n in docker_on(name, kind, *listing).split() if n.startswith(prefix + "-")]
            if stale:
                docker_on(name, kind, "rm", *(["-f"] if kind != "network" else []), *stale, timeout=300)
                removed += [f"{name}:{kind} {n}" for n in stale]
    return removed


def containers_by_host(stack: str) -> dict[str, dict[str, str]]:
    """host -> {container name: its medisys.host label}, for the stack's containers on each engine."""
    found = {}
    for name in NAMES:
        listing = docker_on(name, "ps", "-a", "--filter", f"label=medisys.stack={stack}", "--format",
                            '{{.Names}} {{.Label "medisys.host"}} {{.Label "medisys.role"}}')
        found[name] = {line.split()[0]: line.split()[1] for line in listing.splitlines() if line.strip()}
    return found
