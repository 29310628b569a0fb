"""The five network segments. The DMZ and production segments reach beyond the host; the offsite
segment does only when the offsite backup repository is a real remote host.

On one host the segments are bridges. On several they are attachable overlays of the hosts'
Swarm (created once, through the first host's engine; every engine then attaches to them by
name), encrypted between hosts where `networks.encrypted` says (prod).
"""

from __future__ import annotations

import pulumi
import pulumi_docker as docker

from components.hosts import DockerHosts
from config import SEGMENTS, Networks

# Database and management traffic never leaves the platform: Docker gives internal networks no
# gateway route out, so a compromised data service cannot call home.
INTERNAL_SEGMENTS = frozenset({"database", "management"})


class SegmentedNetworks(pulumi.ComponentResource):
    """DMZ, production, database, management and offsite networks with fixed subnets."""

    def __init__(self, name: str, args: Networks, *, hosts: DockerHosts, fabric_host: str, overlay: bool, encrypted: bool,
                 offsite_remote: bool = False, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("medisys:platform:SegmentedNetworks", name, None, opts)
        self.plan = args
        self.segments: dict[str, docker.Network] = {}
        for segment in SEGMENTS:
            subnet = getattr(args, segment)
            self.segments[segment] = docker.Network(
                f"{name}-{segment}",
                name=f"{name}-{segment}",
                driver="overlay" if overlay else "bridge",
                # Containers (not Swarm services) join an overlay only when it is attachable.
                attachable=True if overlay else None,
                options={"encrypted": ""} if overlay and encrypted else None,
                # offsite: internal while its SFTP server is a container of this stack; with a real
                # offsite host the backup agent (the repository host, the only one that reaches it)
                # needs a route out through it.
                internal=segment in INTERNAL_SEGMENTS or (segment == "offsite" and not offsite_remote),
                ipam_configs=[docker.NetworkIpamConfigArgs(subnet=str(subnet), gateway=str(subnet.network_address + 1))],
                labels=[
                    docker.NetworkLabelArgs(label="medisys.segment", value=segment),
                    docker.NetworkLabelArgs(label="medisys.stack", value=pulumi.get_stack()),
                ],
                opts=hosts.options(fabric_host, self),
            )
        self.register_outputs({f"{s}_network": n.name for s, n in self.segments.items()})

    def __getitem__(self, segment: str) -> docker.Network:
        return self.segments[segment]
