"""PostgreSQL: a primary and streaming replicas on the database segment, plus what lives inside."""

from __future__ import annotations

import ipaddress

import pulumi
import pulumi_docker as docker
import pulumi_postgresql as postgresql
import pulumi_random as random

from components.backups import STANZA, DatabaseBackups
from components.container import Attachment, ConfigFile, ServiceSpec, service_container
from components.network import SegmentedNetworks
from components.pki import InternalCA
from components.templates import render
from config import Postgres

PRIMARY_HOST_NUMBER = 10
FIRST_REPLICA_HOST_NUMBER = 11
PORT = 5432
PGDATA_MOUNT = "/var/lib/postgresql/data"
SOCKET_DIR = "/var/run/postgresql"
PASSWORD_LENGTH = 32
APP_SCHEMA = "app"


def memory_settings(memory_mb: int, max_connections: int) -> dict[str, int]:
    """Conventional sizing: a quarter of memory for shared buffers, the OS cache assumed at half."""
    return {
        "shared_buffers_mb": max(32, memory_mb // 4),
        "effective_cache_size_mb": max(64, memory_mb // 2),
        "work_mem_mb": max(1, memory_mb // 4 // max_connections),
        "maintenance_work_mem_mb": max(16, memory_mb // 16),
    }


def replica_settings(primary_address: str, slot: str) -> str:
    conninfo = (
        f"host={primary_address} port={PORT} user=replicator passfile=/var/lib/postgresql/.pgpass "
        f"sslmode=verify-full sslrootcert=/etc/postgresql/tls/ca.crt application_name={slot}"
    )
    return f"\n# Standby: follow the primary over TLS through its own slot.\nprimary_conninfo = '{conninfo}'\nprimary_slot_name = '{slot}'\n"


def render_postgresql_conf(settings: Postgres, *, server_role: str, primary_address: str | None = None, slot: str | None = None) -> str:
    standby = replica_settings(primary_address, slot) if primary_address and slot else ""
    return render(
        "postgresql.conf",
        server_role=server_role,
        max_connections=settings.max_connections,
        memory_mb=settings.resources.memory_mb,
        stanza=STANZA,
        replica_settings=standby,
        **memory_settings(settings.resources.memory_mb, settings.max_connections),
    )


def render_pg_hba(database_subnet: ipaddress.IPv4Network) -> str:
    # TLS and SCRAM for every network connection; the local socket is for the server's own OS user.
    return "\n".join(
        [
            "# Rendered by components/postgres.py: TLS and SCRAM only for network clients.",
            "local   all          all                          peer",
            f"hostssl replication  replicator  {database_subnet}  scram-sha-256",
            f"hostssl all          all         {database_subnet}  scram-sha-256",
            "",
        ]
    )


class PostgresCluster(pulumi.ComponentResource):
    """A primary and `replicas` streaming standbys, each on its own volume.

    Every password is generated and secret. A replica clones the primary over a physical slot on
    first start and then streams; `pulumi up` waits for each to be healthy before going on. The
    application database, its roles and pg_stat_statements are managed with pulumi-postgresql.
    """

    def __init__(
        self,
        name: str,
        args: Postgres,
        *,
        image: str,
        networks: SegmentedNetworks,
        ca: InternalCA,
        backups: DatabaseBackups,
        protect_data: bool,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("medisys:platform:PostgresCluster", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        plan = networks.plan
        self.primary_address = plan.host("database", PRIMARY_HOST_NUMBER)
        self.replica_addresses = [plan.host("database", FIRST_REPLICA_HOST_NUMBER + i) for i in range(args.replicas)]

        def password(role: str) -> random.RandomPassword:
            return random.RandomPassword(f"{name}-{role}-password", length=PASSWORD_LENGTH, special=False, opts=child)

        self.passwords = {role: password(role) for role in ("superuser", "replication", "app", "readonly", "monitoring")}
        pg_hba = render_pg_hba(plan.database)
        common_files = [
            ConfigFile("/etc/postgresql/pg_hba.conf", pg_hba),
            ConfigFile("/etc/postgresql/tls/ca.crt", ca.cert_pem),
            ConfigFile("/run/secrets/replication_password", self.passwords["replication"].result, secret=True),
        ]

        def volume(role: str, suffix: str) -> docker.Volume:
            return docker.Volume(
                f"{name}-{suffix}",
                name=f"{name}-{suffix}",
                labels=[docker.VolumeLabelArgs(label="medisys.role", value=role)],
                opts=pulumi.ResourceOptions(parent=self, protect=protect_data),
            )

        def tls_files(server: str, address: str) -> list[ConfigFile]:
            cert = ca.issue(f"{server}-tls", server, dns_names=[server], ip_addresses=[address])
            return [ConfigFile("/etc/postgresql/tls/server.crt", cert.cert_pem), ConfigFile("/etc/postgresql/tls/server.key", cert.key_pem, secret=True)]

        def server_spec(role: str, address: str, files: list[ConfigFile], envs: list[str], volumes: list) -> ServiceSpec:
            return ServiceSpec(
                role=role,
                image=image,
                resources=args.resources,
                attachments=[Attachment(networks["database"], address)],
                healthcheck=["pg_isready", "-q", "-h", SOCKET_DIR, "-p", str(PORT)],
                envs=envs,
                files=files,
                volumes=volumes,
                user="postgres",
                # Fast shutdown needs time to checkpoint; a kill would force crash recovery.
                stop_timeout_seconds=60,
                wait_timeout_seconds=300,
            )

        primary_name = f"{name}-primary"
        self.data_volume = volume("postgres-data", "primary-data")
        self.socket_volume = volume("postgres-socket", "primary-socket")
        self.primary = service_container(
            primary_name,
            primary_name,
            name,
            server_spec(
                "postgres-primary",
                self.primary_address,
                [
                    ConfigFile("/etc/postgresql/postgresql.conf", render_postgresql_conf(args, server_role="primary")),
                    ConfigFile("/run/secrets/postgres_password", self.passwords["superuser"].result, secret=True),
                    *common_files,
                    *tls_files(primary_name, self.primary_address),
                    *backups.files,
                ],
                [
                    "PG_ROLE=primary",
                    "POSTGRES_PASSWORD_FILE=/run/secrets/postgres_password",
                    "REPLICATION_PASSWORD_FILE=/run/secrets/replication_password",
                ],
                [
                    docker.ContainerVolumeArgs(volume_name=self.data_volume.name, container_path=PGDATA_MOUNT),
                    docker.ContainerVolumeArgs(volume_name=self.socket_volume.name, container_path=SOCKET_DIR),
                    backups.repository_mount,
                ],
            ),
            child,
        )

        self.replicas = []
        for index, address in enumerate(self.replica_addresses, start=1):
            replica_name = f"{name}-replica-{index}"
            slot = f"replica_{index}"
            replica_volume = volume("postgres-data", f"replica-{index}-data")
            self.replicas.append(
                service_container(
                    replica_name,
                    replica_name,
                    name,
                    server_spec(
                        "postgres-replica",
                        address,
                        [
                            ConfigFile(
                                "/etc/postgresql/postgresql.conf",
                                render_postgresql_conf(args, server_role="replica", primary_address=self.primary_address, slot=slot),
                            ),
                            *common_files,
                            *tls_files(replica_name, address),
                        ],
                        [
                            "PG_ROLE=replica",
                            f"PRIMARY_HOST={self.primary_address}",
                            f"REPLICATION_SLOT={slot}",
                            "REPLICATION_PASSWORD_FILE=/run/secrets/replication_password",
                        ],
                        [docker.ContainerVolumeArgs(volume_name=replica_volume.name, container_path=PGDATA_MOUNT)],
                    ),
                    pulumi.ResourceOptions(parent=self, depends_on=[self.primary]),
                )
            )

        self._manage_database(name, args, protect_data)
        self.register_outputs({"primary_address": self.primary_address, "replica_addresses": self.replica_addresses})

    def _manage_database(self, name: str, args: Postgres, protect_data: bool) -> None:
        """The application database and least-privilege roles, managed through the primary."""
        provider = postgresql.Provider(
            f"{name}-admin",
            host=args.admin_host or self.primary_address,
            port=args.admin_port,
            username="postgres",
            password=self.passwords["superuser"].result,
            # Encrypted; the provider takes no CA file from a secret, so the server is not verified.
            sslmode="require",
            superuser=True,
            connect_timeout=30,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.primary]),
        )
        on_primary = pulumi.ResourceOptions(parent=self, provider=provider)
        self.app_user = "medisys_app"
        app_role = postgresql.Role(
            f"{name}-app-role", name=self.app_user, login=True, password=self.passwords["app"].result, opts=on_primary
        )
        readonly_role = postgresql.Role(
            f"{name}-readonly-role", name="medisys_readonly", login=True, password=self.passwords["readonly"].result, opts=on_primary
        )
        self.monitoring_user = "medisys_monitoring"
        postgresql.Role(
            f"{name}-monitoring-role",
            name=self.monitoring_user,
            login=True,
            password=self.passwords["monitoring"].result,
            roles=["pg_monitor"],
            opts=on_primary,
        )
        # Where data must outlive the stack, the database and the app schema cannot be deleted by
        # `pulumi destroy`; elsewhere the schema goes with the tables the app made in it.
        holds_data = pulumi.ResourceOptions(protect=protect_data)
        self.database = postgresql.Database(
            f"{name}-database", name=args.database, owner="postgres", opts=pulumi.ResourceOptions.merge(on_primary, holds_data)
        )
        in_database = pulumi.ResourceOptions(parent=self, provider=provider, depends_on=[self.database])
        postgresql.Extension(f"{name}-pg-stat-statements", name="pg_stat_statements", database=args.database, opts=in_database)
        app_schema = postgresql.Schema(
            f"{name}-app-schema",
            name=APP_SCHEMA,
            database=args.database,
            owner=app_role.name,
            drop_cascade=not protect_data,
            opts=pulumi.ResourceOptions.merge(in_database, holds_data),
        )
        postgresql.Grant(
            f"{name}-app-connect", database=args.database, role=app_role.name, object_type="database", privileges=["CONNECT"], opts=in_database
        )
        postgresql.Grant(
            f"{name}-readonly-connect",
            database=args.database,
            role=readonly_role.name,
            object_type="database",
            privileges=["CONNECT"],
            opts=in_database,
        )
        postgresql.Grant(
            f"{name}-readonly-schema-usage",
            database=args.database,
            role=readonly_role.name,
            schema=app_schema.name,
            object_type="schema",
            privileges=["USAGE"],
            opts=in_database,
        )
        # Tables the app creates later are readable by the read-only role without another grant.
        postgresql.DefaultPrivileges(
            f"{name}-readonly-default-select",
            database=args.database,
            owner=app_role.name,
            role=readonly_role.name,
            schema=app_schema.name,
            object_type="table",
            privileges=["SELECT"],
            opts=in_database,
        )
