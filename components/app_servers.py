"""The application servers: 2 to 4 identical containers behind the load balancer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi

from components.container import Attachment, ConfigFile, ServiceSpec, service_container
from components.network import SegmentedNetworks
from config import AppServers

FIRST_HOST_NUMBER = 21
SERVICE_ALIAS = "app"  # HAProxy resolves this on the production segment
SECRETS_DIR = "/run/secrets"
CA_PATH = "/etc/medisys/tls/ca.crt"


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


def app_environment(server_name: str, port: int, conn: AppConnections) -> list[str]:
    # Passwords travel as files; only their paths are in the environment.
    return [
        f"APP_SERVER_NAME={server_name}",
        f"APP_PORT={port}",
        "APP_DRAIN_SECONDS=5",
        f"DB_PRIMARY_HOST={conn.db_primary_host}",
        f"DB_REPLICA_HOSTS={','.join(conn.db_replica_hosts)}",
        f"DB_PORT={conn.db_port}",
        f"DB_REPLICA_PORT={conn.db_replica_port}",
        f"DB_NAME={conn.db_name}",
        f"DB_USER={conn.db_user}",
        f"DB_PASSWORD_FILE={SECRETS_DIR}/db_password",
        "DB_SSLMODE=verify-full",
        f"DB_SSLROOTCERT={CA_PATH}",
        f"REDIS_NODES={','.join(conn.redis_nodes)}",
        f"REDIS_PASSWORD_FILE={SECRETS_DIR}/redis_password",
        "REDIS_TLS=true",
        f"REDIS_CA_FILE={CA_PATH}",
    ]


class AppServerTier(pulumi.ComponentResource):
    """`count` app servers on the production, database and management segments.

    Each has a fixed address per segment, memory and CPU limits, a /health check, and stops
    gracefully (health turns 503, HAProxy drains it, in-flight requests finish).
    """

    def __init__(
        self,
        name: str,
        args: AppServers,
        *,
        image: str,
        networks: SegmentedNetworks,
        connections: AppConnections,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("medisys:platform:AppServers", name, None, opts)
        plan = networks.plan
        self.containers = []
        self.metrics_targets: list[tuple[str, str]] = []  # (server, host:port) for Prometheus
        for index in range(1, args.count + 1):
            server = f"{name}-{index}"
            host = FIRST_HOST_NUMBER + index - 1
            spec = ServiceSpec(
                role="app",
                image=image,
                resources=args.resources,
                attachments=[
                    Attachment(networks["production"], plan.host("production", host), [SERVICE_ALIAS]),
                    Attachment(networks["database"], plan.host("database", host)),
                    Attachment(networks["management"], plan.host("management", host)),
                ],
                healthcheck=["curl", "-fsS", "-o", "/dev/null", f"http://127.0.0.1:{args.port}/health"],
                envs=app_environment(server, args.port, connections),
                files=[
                    ConfigFile(f"{SECRETS_DIR}/db_password", connections.db_password, secret=True),
                    ConfigFile(f"{SECRETS_DIR}/redis_password", connections.redis_password, secret=True),
                    ConfigFile(CA_PATH, connections.ca_cert_pem),
                ],
                user="app",
                stop_timeout_seconds=30,
            )
            self.containers.append(service_container(server, server, name, spec, pulumi.ResourceOptions(parent=self)))
            self.metrics_targets.append((server, f"{plan.host('management', host)}:{args.port}"))
        self.service_name = SERVICE_ALIAS
        self.port = args.port
        self.register_outputs({"servers": [c.name for c in self.containers]})
