"""The application servers: 2 to 4 identical containers behind the load balancer.

A release (any change that replaces app containers) runs in this order, expressed as Pulumi
dependencies so `pulumi up` itself does the rollout:

    migrations job -> app-1 -> gate-1 -> app-2 -> gate-2 -> ...

Each server is replaced delete-before-create (fixed name and addresses): the old one drains
(its /health turns 503, HAProxy takes it out of rotation, in-flight requests finish) and stops;
the new one must pass its Docker health check (`wait`) and then its gate, a one-shot job that
waits until HAProxy's own checks have it UP. Only then is the next server touched, so at most
one server is ever out of rotation, and a server that never turns healthy stops the `up` there.

Every server speaks HTTPS only, with its own certificate from the internal CA naming its
container, the service alias HAProxy resolves and its addresses, so no plain-text hop crosses a
host: HAProxy and Prometheus verify it against the CA. A re-issued certificate (30 days before
expiry) is a new upload, so it rolls out like a release.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_docker as docker

from components.container import JOB_RESOURCES, Attachment, ConfigFile, ServiceSpec, after_success, service_container
from components.hosts import DockerHosts
from components.network import SegmentedNetworks
from components.pki import InternalCA
from components.templates import TEMPLATE_DIR
from config import AppServers
from placement import Placement

# A new server has this long to pass its health check before the rollout stops (the check
# turns unhealthy after ~35 s: 10 s start period + 5 retries 5 s apart).
SERVER_WAIT_SECONDS = 90
GATE_TIMEOUT_SECONDS = 60
SERVICE_ALIAS = "app"  # HAProxy resolves this on the production segment
SECRETS_DIR = "/run/secrets"
CA_PATH = "/etc/medisys/tls/ca.crt"
TLS_CERT_PATH = "/etc/medisys/tls/server.crt"
TLS_KEY_PATH = f"{SECRETS_DIR}/server.key"
SEGMENTS = ("production", "database", "management")


@dataclass(frozen=True)
class AppConnections:
    """What an app server needs to reach the data tier. Passwords are secret Outputs."""

    db_primary_host: str
    db_replica_hosts: Sequence[str]
    db_port: int
    db_replica_port: int
    db_name: str
    db_user: str
    db_password: pulumi.Output[str]
    redis_nodes: Sequence[str]
    redis_password: pulumi.Output[str]
    ca_cert_pem: pulumi.Input[str]


@dataclass(frozen=True)
class RolloutGate:
    """Where a gate asks HAProxy whether a server is in rotation: every edge's stats CSV, the backend."""

    image: str
    stats_urls: Sequence[str]
    backend: str


def database_environment(conn: AppConnections) -> list[str]:
    return [
        f"DB_PRIMARY_HOST={conn.db_primary_host}",
        f"DB_PORT={conn.db_port}",
        f"DB_REPLICA_PORT={conn.db_replica_port}",
        f"DB_NAME={conn.db_name}",
        f"DB_USER={conn.db_user}",
        f"DB_PASSWORD_FILE={SECRETS_DIR}/db_password",
        "DB_SSLMODE=verify-full",
        f"DB_SSLROOTCERT={CA_PATH}",
    ]


def health_check(server_name: str, port: int) -> list[str]:
    """HTTPS /health on loopback, verified as HAProxy verifies it: the internal CA, and a name the
    certificate carries (the container's, pinned to 127.0.0.1 so no lookup is involved)."""
    return ["curl", "-fsS", "-o", "/dev/null", "--cacert", CA_PATH, "--resolve", f"{server_name}:{port}:127.0.0.1",
            f"https://{server_name}:{port}/health"]


def app_environment(server_name: str, port: int, conn: AppConnections) -> list[str]:
    # Passwords and the TLS key travel as files; only their paths are in the environment.
    return [
        f"APP_SERVER_NAME={server_name}",
        f"APP_PORT={port}",
        f"APP_TLS_CERT_FILE={TLS_CERT_PATH}",
        f"APP_TLS_KEY_FILE={TLS_KEY_PATH}",
        "APP_DRAIN_SECONDS=5",
        *database_environment(conn),
        f"DB_REPLICA_HOSTS={','.join(conn.db_replica_hosts)}",
        f"REDIS_NODES={','.join(conn.redis_nodes)}",
        f"REDIS_PASSWORD_FILE={SECRETS_DIR}/redis_password",
        "REDIS_TLS=true",
        f"REDIS_CA_FILE={CA_PATH}",
    ]


class AppServerTier(pulumi.ComponentResource):
    """`count` app servers on the production, database and management segments, rolled out one
    at a time after the release's migrations (see the module docstring).

    Each has a fixed address per segment, memory and CPU limits, a /health check, its own TLS
    certificate from `ca` (HTTPS only), and stops gracefully (health turns 503, HAProxy drains it,
    in-flight requests finish).
    """

    def __init__(
        self,
        name: str,
        args: AppServers,
        *,
        image: str,
        networks: SegmentedNetworks,
        placement: Placement,
        hosts: DockerHosts,
        connections: AppConnections,
        gate: RolloutGate,
        ca: InternalCA,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("medisys:platform:AppServers", name, None, opts)
        self.component_name = name
        self._hosts = hosts
        secret_files = [
            ConfigFile(f"{SECRETS_DIR}/db_password", connections.db_password, secret=True),
            ConfigFile(CA_PATH, connections.ca_cert_pem),
        ]
        migrations_spec = ServiceSpec(
            role="app-migrations",
            image=image,
            resources=JOB_RESOURCES,
            attachments=[Attachment(networks["database"], placement["app-migrations"].on("database"))],
            healthcheck=None,
            one_shot=True,
            command=["python3", "-m", "medisys_app.migrate"],
            envs=database_environment(connections),
            files=secret_files,
            user="app",
        )
        # A new image is a new release: the job is replaced and runs its migrations first. A
        # failing migration fails this job, and `up` stops before any server changes.
        self.migrations = service_container(
            f"{name}-migrations", f"{name}-migrations", name, migrations_spec, hosts.options(placement["app-migrations"].host, self)
        )
        self.containers = []
        self.gates = []
        self.certificates = []
        self.metrics_targets: list[tuple[str, str]] = []  # (server, host:port) for Prometheus
        previous = after_success(self.migrations, f"the release's database migrations ({name}-migrations)")
        for index in range(1, args.count + 1):
            server = f"{name}-{index}"
            place, gate_place = placement[f"app-{index}"], placement[f"app-gate-{index}"]
            # Names HAProxy (verifyhost: the alias it resolves), the health check (the container)
            # and Prometheus (the management address it scrapes) verify.
            certificate = ca.issue(f"{server}-tls", server, dns_names=[server, SERVICE_ALIAS],
                                   ip_addresses=[place.on(segment) for segment in SEGMENTS])
            spec = ServiceSpec(
                role="app",
                image=image,
                resources=args.resources,
                attachments=[
                    Attachment(networks["production"], place.on("production"), [SERVICE_ALIAS]),
                    Attachment(networks["database"], place.on("database")),
                    Attachment(networks["management"], place.on("management")),
                ],
                healthcheck=health_check(server, args.port),
                envs=app_environment(server, args.port, connections),
                files=[
                    *secret_files,
                    ConfigFile(f"{SECRETS_DIR}/redis_password", connections.redis_password, secret=True),
                    ConfigFile(TLS_CERT_PATH, certificate.cert_pem),
                    ConfigFile(TLS_KEY_PATH, certificate.key_pem, secret=True),
                ],
                user="app",
                stop_timeout_seconds=30,
                wait_timeout_seconds=SERVER_WAIT_SECONDS,
            )
            container = service_container(server, server, name, spec, hosts.options(place.host, self, depends_on=[previous]))
            gate_job = self._gate(f"{server}-gate", server, container, place.on("production"), args.port,
                                  Attachment(networks["management"], gate_place.on("management")), gate, gate_place.host)
            previous = after_success(gate_job, f"{server} coming into HAProxy's rotation ({server}-gate)")
            self.containers.append(container)
            self.gates.append(gate_job)
            self.certificates.append(certificate)
            self.metrics_targets.append((server, f"{place.on('management')}:{args.port}"))
        self.service_name = SERVICE_ALIAS
        self.port = args.port
        # The last gate has no server after it: its result fails `up` through the outputs.
        self.rolled_out = previous.apply(lambda _: True)
        self.register_outputs({"servers": [c.name for c in self.containers], "rolled_out": self.rolled_out})

    def _gate(self, name: str, server: str, container: docker.Container, address: str, port: int,
              attachment: Attachment, gate: RolloutGate, host: str) -> docker.Container:
        spec = ServiceSpec(
            role="app-rollout-gate",
            image=gate.image,
            resources=JOB_RESOURCES,
            attachments=[attachment],
            healthcheck=None,
            one_shot=True,
            entrypoint=["/bin/sh", "/usr/local/bin/app-rollout-gate"],
            envs=[f"SERVER_NAME={server}", f"SERVER_ADDRESS={address}:{port}", "STATS_URLS=" + " ".join(gate.stats_urls),
                  f"BACKEND={gate.backend}", f"GATE_TIMEOUT_SECONDS={GATE_TIMEOUT_SECONDS}"],
            files=[
                # The server's container ID makes the gate run again whenever the server is replaced.
                ConfigFile("/run/medisys/server-id", container.id),
                ConfigFile("/usr/local/bin/app-rollout-gate", (TEMPLATE_DIR / "app-rollout-gate.sh").read_text(), executable=True),
            ],
            user="haproxy",
        )
        return service_container(name, name, self.component_name, spec, self._hosts.options(host, self, depends_on=[container]))
