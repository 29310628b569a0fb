#!/usr/bin/env python3
"""Checks, before `pulumi up` changes anything, what would make the local deployment fail halfway:
the stack config is invalid, a port the load balancer publishes is taken by something else, or a
Docker network of another project already uses one of the stack's subnets.

    venv/bin/python scripts/preflight.py dev
"""

from __future__ import annotations

import ipaddress
import json
import socket
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import config  # noqa: E402


def stack_config(stack: str) -> config.StackConfig:
    document = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
    raw = {key.split(":", 1)[1]: value for key, value in document.items() if key.startswith("medisys:")}
    return config.load(raw, stack)


def port_free(address: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True


def own_ports(stack: str) -> set[int]:
    """Host ports already published by this stack's own containers (a re-run keeps them)."""
    names = subprocess.run(["docker", "ps", "-q", "--filter", f"label=medisys.stack={stack}"], capture_output=True, text=True).stdout.split()
    ports: set[int] = set()
    for name in names:
        mapping = subprocess.run(["docker", "port", name], capture_output=True, text=True).stdout
        ports |= {int(line.rsplit(":", 1)[1]) for line in mapping.splitlines() if ":" in line}
    return ports


def foreign_subnets(prefix: str) -> dict[str, ipaddress.IPv4Network]:
    """Subnets of Docker networks that do not belong to this stack."""
    ids = subprocess.run(["docker", "network", "ls", "-q"], capture_output=True, text=True).stdout.split()
    if not ids:
        return {}
    found: dict[str, ipaddress.IPv4Network] = {}
    for network in json.loads(subprocess.run(["docker", "network", "inspect", *ids], capture_output=True, text=True).stdout or "[]"):
        if network["Name"].startswith(prefix + "-"):
            continue
        for ipam in (network.get("IPAM") or {}).get("Config") or []:
            if ipam.get("Subnet") and ":" not in ipam["Subnet"]:
                found[network["Name"]] = ipaddress.IPv4Network(ipam["Subnet"])
    return found


def remote_engine(stack: str) -> bool:
    document = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
    return "docker:host" in document


def problems(stack: str) -> list[str]:
    try:
        cfg = stack_config(stack)
    except config.ConfigError as error:
        return [str(error)]
    if remote_engine(stack):
        return []  # ports and networks live on that host; only the config can be checked from here
    found = []
    mine = own_ports(stack)
    lb = cfg.load_balancer
    for port in (lb.https_port, lb.http_port):
        if port not in mine and not port_free(str(lb.bind_address), port):
            found.append(
                f"port {lb.bind_address}:{port} is already in use by another program: stop it, or set "
                f"medisys:load_balancer.https_port/http_port in Pulumi.{stack}.yaml"
            )
    others = foreign_subnets(cfg.name_prefix)
    for segment in config.SEGMENTS:
        subnet = getattr(cfg.networks, segment)
        for name, existing in others.items():
            if subnet.overlaps(existing):
                found.append(
                    f"subnet {subnet} of the {segment} segment overlaps Docker network '{name}' ({existing}): "
                    f"remove that network or set medisys:networks.{segment} in Pulumi.{stack}.yaml"
                )
    return found


def main() -> int:
    stack = sys.argv[1] if len(sys.argv) > 1 else "dev"
    found = problems(stack)
    for problem in found:
        print(f"[preflight] ERROR: {problem}", file=sys.stderr)
    if not found:
        checked = "config valid (ports and subnets are on the remote Docker host)" if remote_engine(stack) else "config valid, ports free, subnets free"
        print(f"[preflight] stack {stack}: {checked}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
