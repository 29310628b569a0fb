"""The edge: HAProxy terminating TLS, the only container that publishes ports to the host."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_docker as docker

from components.container import Attachment, ConfigFile, ServiceSpec, service_container
from components.network import SegmentedNetworks
from components.templates import render
from config import LoadBalancer

CONFIG_PATH = "/etc/haproxy/haproxy.cfg"
CERTIFICATE_PATH = "/etc/haproxy/certs/server.pem"
HOST_NUMBER = 10
MANAGEMENT_PORT = 8404


@dataclass(frozen=True)
class Backend:
    """Where the app servers answer: a DNS alias on the production segment and a port."""

    service_name: str
    port: int
    max_servers: int


def render_haproxy_cfg(settings: LoadBalancer, backend: Backend, management_address: str) -> str:
    # Port 80 redirects to the port clients really use for HTTPS; 443 needs no suffix.
    suffix = "" if settings.https_port == 443 else f":{settings.https_port}"
    return render(
        "haproxy.cfg",
        certificate_path=CERTIFICATE_PATH,
        hsts_max_age=settings.hsts_max_age_seconds,
        public_https_port_suffix=suffix,
        max_app_servers=backend.max_servers,
        app_service_name=backend.service_name,
        app_port=backend.port,
        management_address=management_address,
        management_port=MANAGEMENT_PORT,
    )


class LoadBalancerTier(pulumi.ComponentResource):
    """HAProxy on the DMZ and production segments; metrics and stats on management only.

    HTTPS (TLS 1.2+) is served on 443 with HSTS; port 80 only redirects. App servers are
    health-checked on /health and discovered by DNS, so scaling them never reconfigures HAProxy.
    """

    def __init__(
        self,
        name: str,
        args: LoadBalancer,
        *,
        image: str,
        networks: SegmentedNetworks,
        backend: Backend,
        certificate_pem: pulumi.Input[str],
        private_key_pem: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("medisys:platform:LoadBalancer", name, None, opts)
        plan = networks.plan
        self.management_address = plan.host("management", HOST_NUMBER)
        self.config_text = render_haproxy_cfg(args, backend, self.management_address)
        pem_bundle = pulumi.Output.concat(certificate_pem, "\n", private_key_pem, "\n")
        spec = ServiceSpec(
            role="load-balancer",
            image=image,
            resources=args.resources,
            attachments=[
                Attachment(networks["dmz"], plan.host("dmz", HOST_NUMBER)),
                Attachment(networks["production"], plan.host("production", HOST_NUMBER)),
                Attachment(networks["management"], self.management_address, ["load-balancer"]),
            ],
            healthcheck=["curl", "-fsS", "-o", "/dev/null", f"http://{self.management_address}:{MANAGEMENT_PORT}/stats"],
            files=[ConfigFile(CONFIG_PATH, self.config_text), ConfigFile(CERTIFICATE_PATH, pem_bundle, secret=True)],
            ports=[
                docker.ContainerPortArgs(internal=443, external=args.https_port, ip=str(args.bind_address)),
                docker.ContainerPortArgs(internal=80, external=args.http_port, ip=str(args.bind_address)),
            ],
            user="haproxy",
        )
        self.container = service_container(
            f"{name}-haproxy", f"{name}-haproxy", name, spec, pulumi.ResourceOptions(parent=self)
        )
        self.https_url = f"https://{args.bind_address}:{args.https_port}"
        self.metrics_target = f"{self.management_address}:{MANAGEMENT_PORT}"
        self.register_outputs({"https_url": self.https_url})
