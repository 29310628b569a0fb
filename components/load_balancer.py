"""The edge: HAProxy terminating TLS, the only container that publishes ports to the host.

Its configuration and certificate are not inputs of the HAProxy container (a change there would
recreate it and drop every connection). A one-shot edge-config job carries them instead: it
writes them as a release onto the runtime volume both share, checks it with `haproxy -c` and
asks the running master to reload over its master CLI socket. A new config or a re-issued
certificate replaces only the job; HAProxy reloads in place.

HAProxy speaks TLS to the app servers too (they may run on another Docker host): it verifies each
server's certificate against the internal CA, which travels in the same release (`haproxy -c`
checks the release with it), and checks the name the app servers' certificates share.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_docker as docker

from components.container import (
    Attachment,
    ConfigFile,
    ConfigRelease,
    ServiceSpec,
    after_success,
    config_release_job,
    service_container,
)
from components.hosts import DockerHosts
from components.network import SegmentedNetworks
from components.pki import InternalCA
from config import LoadBalancer
from placement import Placement

from components.templates import render

# Where the edge-config job receives the rendered files (the paths the policy pack reads) ...
CONFIG_PATH = "/etc/haproxy/haproxy.cfg"
STAGED_CERTIFICATE_PATH = "/etc/haproxy/certs/server.pem"
STAGED_APP_CA_PATH = "/etc/haproxy/certs/app-ca.crt"
# ... and where HAProxy reads the release in use (a symlink the job switches atomically).
RUNTIME_DIR = "/var/lib/haproxy"
CERTIFICATE_PATH = f"{RUNTIME_DIR}/current/server.pem"
# The CA the app servers' certificates chain to: inside the release, so `haproxy -c` checks with it.
APP_CA_PATH = f"{RUNTIME_DIR}/current/app-ca.crt"
MANAGEMENT_PORT = 8404
APP_BACKEND = "app_servers"
# The master CLI's `reload` answers "Success=1" once the new workers run; no socket (or no
# answer) means no master runs yet, and HAProxy starts from `current` (config-release.sh: 3).
MASTER_SOCKET = f"{RUNTIME_DIR}/master.sock"
SERVER_STATE_FILE = f"{RUNTIME_DIR}/server-state"
# Before the reload, the running worker's server states go to SERVER_STATE_FILE for the new one
# (best effort: without it the new worker resolves the servers itself, as on a first start).
MASTER_RELOAD = (
    f'[ -S {MASTER_SOCKET} ] || exit 3; '
    f'echo "@1 show servers state" | socat -t 10 stdio unix-connect:{MASTER_SOCKET} > {SERVER_STATE_FILE}.next '
    f'&& mv {SERVER_STATE_FILE}.next {SERVER_STATE_FILE} || rm -f {SERVER_STATE_FILE}.next; '
    f'answer=$(echo reload | socat -t 30 stdio unix-connect:{MASTER_SOCKET}) || exit 3; '
    'case "$answer" in *Success=1*) exit 0 ;; *) echo "$answer" >&2; exit 1 ;; esac'
)


@dataclass(frozen=True)
class Backend:
    """Where the app servers answer: a DNS alias on the production segment (also the name their
    certificates carry, which HAProxy verifies) and a port."""

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
        app_ca_file=APP_CA_PATH,
        app_backend=APP_BACKEND,
        management_address=management_address,
        management_port=MANAGEMENT_PORT,
        server_state_file=SERVER_STATE_FILE,
    )


class LoadBalancerTier(pulumi.ComponentResource):
    """HAProxy edges on the DMZ and production segments, one per host the plan names; metrics and
    stats on management only.

    HTTPS (TLS 1.2+) is served on 443 with HSTS; port 80 only redirects. App servers are reached
    over TLS verified against `ca` (requests and /health checks alike) and discovered by DNS, so
    scaling them never reconfigures HAProxy.
    Config and certificate changes reload HAProxy in place (see the module docstring). Each edge
    publishes on its host's public address: clients reach a surviving edge through DNS that lists
    every edge's address, or an L4 balancer in front of them (README "Several Docker hosts").
    """

    def __init__(
        self,
        name: str,
        args: LoadBalancer,
        *,
        image: str,
        networks: SegmentedNetworks,
        placement: Placement,
        hosts: DockerHosts,
        backend: Backend,
        certificate_pem: pulumi.Input[str],
        private_key_pem: pulumi.Input[str],
        ca: InternalCA,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("medisys:platform:LoadBalancer", name, None, opts)
        pem_bundle = pulumi.Output.concat(certificate_pem, "\n", private_key_pem, "\n")
        self.containers: list[docker.Container] = []
        self.config_jobs: list[docker.Container] = []
        self.management_addresses: list[str] = []
        self.public_addresses: list[str] = []
        self.config_texts: list[str] = []
        released = []
        for index in range(1, placement.edges + 1):
            # Edge 1 keeps the single-host names, so a stack that grows hosts keeps its first edge.
            edge = name if index == 1 else f"{name}-{index}"
            place, job_place = placement[f"edge-{index}"], placement[f"edge-config-{index}"]
            management_address = place.on("management")
            config_text = render_haproxy_cfg(args, backend, management_address)
            # Releases of the config and certificate, the `current` link and the master CLI socket:
            # a volume of the edge's own host, which its config job (on that host too) fills.
            runtime = hosts.volume(f"{edge}-runtime", "load-balancer-runtime", place.host, self)
            release = ConfigRelease(
                image=image,
                volume=runtime,
                release_dir=RUNTIME_DIR,
                files=[(ConfigFile(CONFIG_PATH, config_text), "haproxy.cfg"),
                       (ConfigFile(STAGED_CERTIFICATE_PATH, pem_bundle, secret=True), "server.pem"),
                       (ConfigFile(STAGED_APP_CA_PATH, ca.cert_pem), "app-ca.crt")],
                check_command=f"haproxy -c -q -f {RUNTIME_DIR}/current/haproxy.cfg",
                reload_command=MASTER_RELOAD,
                attachment=Attachment(networks["management"], job_place.on("management")),
                user="haproxy",
            )
            config_job = config_release_job(f"{edge}-config", "load-balancer-config", name, release, hosts.options(job_place.host, self))
            public_address = str(placement.host(place.host).public_address or args.bind_address)
            spec = ServiceSpec(
                role="load-balancer",
                image=image,
                resources=args.resources,
                attachments=[
                    Attachment(networks["dmz"], place.on("dmz")),
                    Attachment(networks["production"], place.on("production")),
                    Attachment(networks["management"], management_address, ["load-balancer"]),
                ],
                healthcheck=["curl", "-fsS", "-o", "/dev/null", f"http://{management_address}:{MANAGEMENT_PORT}/stats"],
                # Master-worker mode with the master CLI on the shared volume: the config job's reloads.
                command=["haproxy", "-W", "-db", "-S", f"{MASTER_SOCKET},mode,600", "-f", release.current("haproxy.cfg")],
                volumes=[release.mount],
                ports=[
                    docker.ContainerPortArgs(internal=443, external=args.https_port, ip=public_address),
                    docker.ContainerPortArgs(internal=80, external=args.http_port, ip=public_address),
                ],
                user="haproxy",
            )
            gate = after_success(config_job, f"the edge config release ({edge}-config)")
            # HAProxy starts from the release the job installed; later jobs only reload it.
            self.containers.append(service_container(
                f"{edge}-haproxy", f"{edge}-haproxy", name, spec,
                hosts.options(place.host, self, depends_on=[gate]),
            ))
            self.config_jobs.append(config_job)
            self.management_addresses.append(management_address)
            self.public_addresses.append(public_address)
            self.config_texts.append(config_text)
            released.append(gate)
        # The first edge under the names the single-host stack always had.
        self.container = self.containers[0]
        self.config_job = self.config_jobs[0]
        self.config_text = self.config_texts[0]
        self.management_address = self.management_addresses[0]
        self.https_url = f"https://{self.public_addresses[0]}:{args.https_port}"
        self.https_urls = [f"https://{a}:{args.https_port}" for a in self.public_addresses]
        self.metrics_targets = [f"{a}:{MANAGEMENT_PORT}" for a in self.management_addresses]
        self.stats_urls = [f"http://{a}:{MANAGEMENT_PORT}/stats" for a in self.management_addresses]
        self.app_backend = APP_BACKEND
        # A later release only replaces the jobs; their results fail `up` through the outputs.
        self.config_released = pulumi.Output.all(*released).apply(lambda _: True)
        self.register_outputs({"https_urls": self.https_urls, "config_released": self.config_released})
