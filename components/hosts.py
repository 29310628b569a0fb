"""The stack's Docker hosts: one pulumi-docker provider per engine, named after its host.

Every container, network and volume is created through the provider of the host the placement
plan gives it (`DockerHosts.options`); a single-host stack is the same code with one provider.
"""

from __future__ import annotations

from collections.abc import Mapping

import pulumi
import pulumi_docker as docker

from config import DockerHost, HostTLS


class DockerHosts(pulumi.ComponentResource):
    """A provider per host: `ssh://` through the ssh client, `tcp://` with the host's TLS client
    certificate (secret), no address = the deployer's DOCKER_HOST or local socket."""

    def __init__(self, name: str, hosts: tuple[DockerHost, ...], tls: Mapping[str, HostTLS],
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("medisys:platform:DockerHosts", name, None, opts)
        self.providers: dict[str, docker.Provider] = {}
        for host in hosts:
            material = tls.get(host.name)
            self.providers[host.name] = docker.Provider(
                f"{name}-{host.name}",
                host=host.docker_host,
                # Secret in state whatever the caller passed: the key drives a root-equivalent engine.
                ca_material=pulumi.Output.secret(material.ca_pem) if material else None,
                cert_material=pulumi.Output.secret(material.cert_pem) if material else None,
                key_material=pulumi.Output.secret(material.key_pem) if material else None,
                # ssh: no password prompt can be answered during `up`; fail at once instead.
                ssh_opts=["-o", "BatchMode=yes"] if (host.docker_host or "").startswith("ssh://") else None,
                opts=pulumi.ResourceOptions(parent=self),
            )
            # Read back by host_label: the host a container or volume is created on.
            self.providers[host.name].medisys_host = host.name  # type: ignore[attr-defined]
        self.register_outputs({"hosts": [h.name for h in hosts]})

    def volume(self, name: str, role: str, host: str, parent: pulumi.Resource, protect: bool = False) -> docker.Volume:
        """A named volume on `host` (volumes are local to their host). No host label: a label change
        would replace the volume, and data never moves between hosts by a replacement."""
        return docker.Volume(
            name,
            name=name,
            labels=[docker.VolumeLabelArgs(label="medisys.role", value=role)],
            opts=self.options(host, parent, protect=protect),
        )

    def options(self, host: str, parent: pulumi.Resource, **more: object) -> pulumi.ResourceOptions:
        """Child options that create a resource on `host`'s engine."""
        return pulumi.ResourceOptions(parent=parent, provider=self.providers[host], **more)  # type: ignore[arg-type]


def host_label(opts: pulumi.ResourceOptions) -> dict[str, str]:
    """`medisys.host` for a resource created through a host's provider. Upstream pulumi-docker does
    not replace a resource whose provider's host changed (it updates the provider in place), so a
    move to another host must change an input that forces replacement: this label."""
    host = getattr(opts.provider, "medisys_host", None)
    return {"medisys.host": host} if host else {}
