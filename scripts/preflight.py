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
    """The stack's engines are elsewhere (medisys:hosts with addresses): its ports and networks
    live there, not on this machine's engine."""
    return any(h.docker_host for h in stack_config(stack).hosts)


def engine_args(stack: str, host: config.DockerHost, workdir: Path) -> list[str]:
    """`docker` arguments that reach one host as the program will (TLS material from the stack's
    secret config through `pulumi config get`, which needs .state/env.sh's passphrase)."""
    args = ["-H", host.docker_host or "unix:///var/run/docker.sock"]
    if host.over_tcp:
        for part, file in (("ca", "ca.pem"), ("cert", "cert.pem"), ("key", "key.pem")):
            got = subprocess.run(["pulumi", "config", "get", "--stack", stack, "--path", f"medisys:host_tls.{host.name}.{part}"],
                                 capture_output=True, text=True, cwd=ROOT)
            if got.returncode != 0:
                raise RuntimeError(f"medisys:host_tls.{host.name}.{part} cannot be read ({got.stderr.strip()[:120]})")
            (workdir / file).write_text(got.stdout)
            (workdir / file).chmod(0o600)
        args += ["--tlsverify", "--tlscacert", str(workdir / "ca.pem"), "--tlscert", str(workdir / "cert.pem"),
                 "--tlskey", str(workdir / "key.pem")]
    return args


def swarm_problems(stack: str, cfg: config.StackConfig) -> list[str]:
    """On several hosts: every engine answers and is an active member of one Swarm, with enough
    managers for a quorum through the loss of one (three hosts, three managers)."""
    import tempfile

    found, clusters, managers = [], set(), 0
    for host in cfg.hosts:
        with tempfile.TemporaryDirectory() as workdir:
            try:
                args = engine_args(stack, host, Path(workdir))
            except RuntimeError as error:
                found.append(f"host {host.name}: {error}: run `scripts/hosts config {stack}` or set it with `pulumi config set --secret --path`")
                continue
            info = subprocess.run(["docker", *args, "info", "--format", "{{.Swarm.LocalNodeState}} {{.Swarm.Cluster.ID}} {{.Swarm.ControlAvailable}}"],
                                  capture_output=True, text=True, timeout=60)
        if info.returncode != 0:
            found.append(f"host {host.name} ({host.docker_host}) does not answer: {info.stderr.strip()[:200]}")
            continue
        state, cluster, manager = (info.stdout.split() + ["", "", ""])[:3]
        if state != "active":
            found.append(f"host {host.name} is not in a Swarm (state {state or 'none'}): run `docker swarm init` on the first host and"
                         " `docker swarm join --token <manager token> FIRST:2377` on the others (README \"Several Docker hosts\")")
            continue
        clusters.add(cluster)
        managers += manager == "true"
    if len(clusters) > 1:
        found.append(f"the hosts belong to {len(clusters)} different Swarms: join them all to one")
    if not found and len(cfg.hosts) >= 3 and managers < 3:
        found.append(f"only {managers} of the hosts are Swarm managers: with fewer than three, losing one host loses the Swarm's quorum;"
                     " promote them with `docker node promote`")
    return found


def problems(stack: str) -> list[str]:
    try:
        cfg = stack_config(stack)
    except config.ConfigError as error:
        return [str(error)]
    if cfg.multi_host:
        return swarm_problems(stack, cfg)
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
        checked = ("config valid, every host answers in one Swarm" if stack_config(stack).multi_host
                   else "config valid (ports and subnets are on the remote Docker host)" if remote_engine(stack)
                   else "config valid, ports free, subnets free")
        print(f"[preflight] stack {stack}: {checked}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
