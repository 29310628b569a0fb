"""PostgreSQL with automatic failover: Patroni members, a three-member etcd and a leader-following endpoint.

Pulumi declares members (pg-1 .. pg-N: fixed addresses, data volumes, identical configuration),
never a "primary" or a "replica": which member leads is runtime state, held as Patroni's leader
lock in etcd. So after a failover `pulumi preview`/`up` find nothing to change, and `refresh`
leaves the cluster alone.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_docker as docker
import pulumi_postgresql as postgresql
import pulumi_random as random
import yaml

from components.backups import STANZA, BackupRepositories, PgServer
from components.container import Attachment, ConfigFile, ServiceSpec, service_container
from components.hosts import DockerHosts
from components.network import SegmentedNetworks
from components.pki import InternalCA
from components.templates import render
from config import Postgres, Resources
from placement import Placement

PORT = 5432  # PostgreSQL on every member, and the endpoint's write port (the leader)
READ_PORT = 5433  # the endpoint's read port (streaming replicas)
REST_PORT = 8008  # Patroni's REST API on every member (health checks, switchover)
ETCD_CLIENT_PORT, ETCD_PEER_PORT = 2379, 2380
PROXY_STATS_PORT = 8404
ETCD_MEMBERS = 3  # a quorum of 2 survives the loss of any one
SOCKET_DIR = "/var/run/postgresql"
PATRONI_DIR = "/etc/patroni"
POSTGRESQL_CONF = "/etc/postgresql/postgresql.conf"  # Patroni's custom_conf: the settings it does not own
TLS_DIR = "/etc/postgresql/tls"
CA_FILE = f"{TLS_DIR}/ca.crt"
CERT_FILE = f"{TLS_DIR}/server.crt"
KEY_FILE = "/var/lib/postgresql/tls/server.key"  # the entrypoint copies the uploaded key here, mode 0600
ETCD_TLS_DIR = "/etc/etcd/tls"
PASSWORD_LENGTH = 32
# Member N keeps its data in MEMBERS_MOUNT/N (its volume); the image creates the directories.
MEMBERS_MOUNT = "/var/lib/postgresql/members"
APP_SCHEMA = "app"
PATRONI_NAMESPACE = "/medisys/"
ETCD_RESOURCES = Resources(memory_mb=128, cpus=0.25)
PROXY_RESOURCES = Resources(memory_mb=128, cpus=0.25)


@dataclass(frozen=True)
class ClusterPlan:
    """Names and fixed addresses of one cluster: a pure function of the settings and the subnet."""

    scope: str  # Patroni's cluster name (the etcd key prefix under PATRONI_NAMESPACE)
    members: Sequence[tuple[str, str]]  # (member name, address)
    etcd: Sequence[tuple[str, str]]
    proxy_address: str

    @property
    def etcd_hosts(self) -> list[str]:
        return [f"{address}:{ETCD_CLIENT_PORT}" for _, address in self.etcd]


MAX_MEMBERS = 4  # 1 + the most replicas config.Postgres allows; the endpoint keeps this many server slots


def member_volume_path(index: int) -> str:
    return f"{MEMBERS_MOUNT}/{index}"


def member_data_dir(index: int) -> str:
    return f"{member_volume_path(index)}/pgdata"


def cluster_plan(name: str, settings: Postgres, address: Callable[[str, str], str], members: int | None = None) -> ClusterPlan:
    """`address` is Placement.address (slot, segment) -> address; `members` overrides the count."""
    count = settings.members if members is None else members
    return ClusterPlan(
        scope=name,
        members=[(f"{name}-{i}", address(f"postgres-{i}", "database")) for i in range(1, count + 1)],
        etcd=[(f"{name}-etcd-{i}", address(f"etcd-{i}", "database")) for i in range(1, ETCD_MEMBERS + 1)],
        proxy_address=address("postgres-proxy", "database"),
    )


def memory_settings(memory_mb: int, max_connections: int) -> dict[str, int]:
    """Conventional sizing: a quarter of memory for shared buffers, the OS cache assumed at half."""
    return {
        "shared_buffers_mb": max(32, memory_mb // 4),
        "effective_cache_size_mb": max(64, memory_mb // 2),
        "work_mem_mb": max(1, memory_mb // 4 // max_connections),
        "maintenance_work_mem_mb": max(16, memory_mb // 16),
    }


def render_postgresql_conf(settings: Postgres) -> str:
    """The settings every member shares (Patroni's `custom_conf`); Patroni adds the role-dependent ones."""
    return render(
        "postgresql.conf",
        memory_mb=settings.resources.memory_mb,
        stanza=STANZA,
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


def _verified(username: str) -> dict[str, str]:
    return {"username": username, "sslmode": "verify-full", "sslrootcert": CA_FILE}


def patroni_settings(settings: Postgres, plan: ClusterPlan, index: int) -> dict:
    """Patroni's configuration for member `index` (1-based), without passwords (in the secret file).

    `bootstrap.dcs` is the cluster-wide part: Patroni writes it to etcd once, when the cluster is
    first initialised; members read it from there ever after.
    """
    member, address = plan.members[index - 1]
    failover = settings.failover
    dcs: dict = {
        "ttl": failover.ttl_seconds,
        "loop_wait": failover.loop_wait_seconds,
        "retry_timeout": failover.retry_timeout_seconds,
        "maximum_lag_on_failover": failover.maximum_lag_on_failover_bytes,
        # Only a replica on the old primary's timeline may take over.
        "check_timeline": True,
        "synchronous_mode": failover.synchronous,
        "synchronous_node_count": 1,
        # Strict mode would stop every write while the only standby is away; with synchronous_mode
        # Patroni still promotes only the synchronous standby, so no acknowledged write is lost.
        "synchronous_mode_strict": False,
        "failsafe_mode": False,
        "postgresql": {
            "use_pg_rewind": True,
            "use_slots": True,
            # Cluster-wide parameters that must agree on every member (Patroni passes them on the command line).
            "parameters": {
                "max_connections": settings.max_connections,
                "wal_level": "replica",
                "wal_log_hints": "on",  # pg_rewind needs it (the data checksums of initdb too)
                "hot_standby": "on",
                "max_wal_senders": 10,
                "max_replication_slots": 10,
                "wal_keep_size": "256MB",
            },
        },
    }
    return {
        "scope": plan.scope,
        "namespace": PATRONI_NAMESPACE,
        "name": member,
        "log": {"level": "INFO"},
        "restapi": {
            "listen": f"{address}:{REST_PORT}",
            "connect_address": f"{address}:{REST_PORT}",
            "certfile": CERT_FILE,
            "keyfile": KEY_FILE,
            "cafile": CA_FILE,
        },
        "ctl": {"cacert": CA_FILE},
        "etcd3": {
            "hosts": plan.etcd_hosts,
            "protocol": "https",
            "cacert": CA_FILE,
            "cert": CERT_FILE,
            "key": KEY_FILE,
        },
        "bootstrap": {
            "dcs": dcs,
            "initdb": ["data-checksums", {"encoding": "UTF8"}, {"locale": "C.UTF-8"}, {"auth-local": "peer"}, {"auth-host": "scram-sha-256"}],
        },
        "postgresql": {
            "listen": f"{address}:{PORT}",
            "connect_address": f"{address}:{PORT}",
            "data_dir": member_data_dir(index),
            "bin_dir": "/usr/lib/postgresql/17/bin",
            "pgpass": "/tmp/pgpass",
            "custom_conf": POSTGRESQL_CONF,
            "use_unix_socket": True,
            "parameters": {"hba_file": "/etc/postgresql/pg_hba.conf", "unix_socket_directories": SOCKET_DIR},
            "authentication": {
                "superuser": _verified("postgres"),
                "replication": _verified("replicator"),
                "rewind": _verified("rewinder"),
            },
            # An old primary that cannot be rewound is cloned again rather than left out.
            "remove_data_directory_on_rewind_failure": True,
            "remove_data_directory_on_diverged_timelines": True,
            "create_replica_methods": ["basebackup"],
            "basebackup": {"checkpoint": "fast"},
            "pg_ctl_timeout": 60,
        },
        # No /dev/watchdog in a container: fencing rests on the leader lock and the endpoint's checks.
        "watchdog": {"mode": "off"},
        "tags": {"nofailover": False, "noloadbalance": False, "clonefrom": False, "nosync": False},
    }


def render_patroni_yml(settings: Postgres, plan: ClusterPlan, index: int) -> str:
    text = yaml.safe_dump(patroni_settings(settings, plan, index), sort_keys=False)
    return "# Rendered by components/postgres.py. Checked by `patroni --validate-config` in tests/config.\n" + text


def render_patroni_secrets(superuser: str, replication: str, rewind: str, rest: str) -> str:
    """Passwords only; Patroni merges this file over patroni.yml (files of the directory, in name order)."""
    document = {
        "restapi": {"authentication": {"username": "patroni", "password": rest}},
        "postgresql": {
            "authentication": {
                "superuser": {"password": superuser},
                "replication": {"password": replication},
                "rewind": {"password": rewind},
            }
        },
    }
    return yaml.safe_dump(document, sort_keys=False)


def etcd_command(plan: ClusterPlan, member: str, address: str) -> list[str]:
    """etcd with TLS and client certificates on both the client and the peer port."""
    peers = ",".join(f"{n}=https://{a}:{ETCD_PEER_PORT}" for n, a in plan.etcd)
    ca, cert, key = (f"{ETCD_TLS_DIR}/{f}" for f in ("ca.crt", "server.crt", "server.key"))
    tls = [f"--trusted-ca-file={ca}", f"--cert-file={cert}", f"--key-file={key}", "--client-cert-auth"]
    peer_tls = [f"--peer-trusted-ca-file={ca}", f"--peer-cert-file={cert}", f"--peer-key-file={key}", "--peer-client-cert-auth"]
    return [
        "etcd",
        f"--name={member}",
        "--data-dir=/var/lib/etcd/data",
        f"--listen-client-urls=https://{address}:{ETCD_CLIENT_PORT}",
        f"--advertise-client-urls=https://{address}:{ETCD_CLIENT_PORT}",
        f"--listen-peer-urls=https://{address}:{ETCD_PEER_PORT}",
        f"--initial-advertise-peer-urls=https://{address}:{ETCD_PEER_PORT}",
        f"--initial-cluster={peers}",
        # Ignored once the member has data: a member that comes back rejoins with what it has.
        "--initial-cluster-state=new",
        f"--initial-cluster-token={plan.scope}",
        *tls,
        *peer_tls,
        "--tls-min-version=TLS1.2",
        "--auto-compaction-retention=1",
        "--log-level=warn",
    ]


def render_proxy_cfg(plan: ClusterPlan) -> str:
    def servers(port: int) -> str:
        return "\n".join(
            f"    server pg-{member.removeprefix(plan.scope + '-')} {address}:{port} check port {REST_PORT}" for member, address in plan.members
        )

    return render(
        "pg-proxy.cfg",
        proxy_address=plan.proxy_address,
        write_port=PORT,
        read_port=READ_PORT,
        stats_port=PROXY_STATS_PORT,
        ca_file="/etc/haproxy/ca.crt",
        write_servers=servers(PORT),
        read_servers=servers(PORT),
    )


class PostgresCluster(pulumi.ComponentResource):
    """PostgreSQL 17 members under Patroni, a three-member etcd holding the leader lock, and an
    HAProxy endpoint whose write port follows the leader and whose read port spreads over replicas.

    Patroni initialises one member and clones the others (streaming over TLS through slots it
    manages); when the leader's lock expires a replica within the allowed lag takes over, and an
    old primary rejoins by pg_rewind or, failing that, a fresh clone. Every connection is TLS,
    every password generated and secret, delivered as files. The application database, its roles
    and pg_stat_statements are managed with pulumi-postgresql through the endpoint's write port.
    """

    def __init__(
        self,
        name: str,
        args: Postgres,
        *,
        image: str,
        etcd_image: str,
        proxy_image: str,
        networks: SegmentedNetworks,
        placement: Placement,
        hosts: DockerHosts,
        ca: InternalCA,
        backups: BackupRepositories,
        protect_data: bool,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("medisys:platform:PostgresCluster", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        network = networks["database"]
        self.plan = cluster_plan(name, args, placement.address)
        self.placement = placement
        self.proxy_address = self.plan.proxy_address
        self.member_addresses = [address for _, address in self.plan.members]
        self.member_names = [member for member, _ in self.plan.members]

        def password(role: str) -> random.RandomPassword:
            return random.RandomPassword(f"{name}-{role}-password", length=PASSWORD_LENGTH, special=False, opts=child)

        self.passwords = {
            role: password(role) for role in ("superuser", "replication", "rewind", "patroni-api", "app", "readonly", "monitoring")
        }
        secrets_yml = pulumi.Output.all(
            *(self.passwords[r].result for r in ("superuser", "replication", "rewind", "patroni-api"))
        ).apply(lambda p: render_patroni_secrets(*p))

        def volume(role: str, suffix: str, protect: bool, host: str) -> docker.Volume:
            return hosts.volume(f"{name}-{suffix}", role, host, self, protect=protect)

        def tls_files(server: str, address: str, directory: str = TLS_DIR) -> list[ConfigFile]:
            # The endpoint's name and address too: clients verify-full through it to whichever member leads.
            cert = ca.issue(
                f"{server}-tls", server, dns_names=[server, f"{name}-proxy"], ip_addresses=[address, self.proxy_address]
            )
            return [
                ConfigFile(f"{directory}/ca.crt", ca.cert_pem),
                ConfigFile(f"{directory}/server.crt", cert.cert_pem),
                ConfigFile(f"{directory}/server.key", cert.key_pem, secret=True),
            ]

        # etcd: independent of one another, so the engine starts all three at once (a member is
        # healthy only once a quorum answers).
        self.etcd = []
        for etcd_index, (member, address) in enumerate(self.plan.etcd, start=1):
            etcd_host = placement[f"etcd-{etcd_index}"].host
            data = volume("etcd-data", f"{member.removeprefix(name + '-')}-data", protect=False, host=etcd_host)
            self.etcd.append(
                service_container(
                    member,
                    member,
                    name,
                    ServiceSpec(
                        role="etcd",
                        image=etcd_image,
                        resources=ETCD_RESOURCES,
                        attachments=[Attachment(network, address)],
                        command=etcd_command(self.plan, member, address),
                        healthcheck=[
                            "etcdctl", f"--endpoints=https://{address}:{ETCD_CLIENT_PORT}", f"--cacert={ETCD_TLS_DIR}/ca.crt",
                            f"--cert={ETCD_TLS_DIR}/server.crt", f"--key={ETCD_TLS_DIR}/server.key", "endpoint", "health",
                        ],
                        files=tls_files(member, address, ETCD_TLS_DIR),
                        volumes=[docker.ContainerVolumeArgs(volume_name=data.name, container_path="/var/lib/etcd")],
                        user="etcd",
                        wait_timeout_seconds=180,
                    ),
                    hosts.options(etcd_host, self),
                )
            )

        common_files = [
            ConfigFile(POSTGRESQL_CONF, render_postgresql_conf(args)),
            ConfigFile("/etc/postgresql/pg_hba.conf", render_pg_hba(networks.plan.database)),
            ConfigFile(f"{PATRONI_DIR}/20-secrets.yml", secrets_yml, secret=True),
        ]
        self.members: list[docker.Container] = []
        self.data_volumes: list[docker.Volume] = []
        # Each member as the backup agent (the repository host) reaches it: pgBackRest over TLS.
        self.backup_servers: list[PgServer] = []
        for index, (member, address) in enumerate(self.plan.members, start=1):
            suffix = member.removeprefix(name + "-")
            member_host = placement[f"postgres-{index}"].host
            data = volume("postgres-data", f"{suffix}-data", protect=protect_data, host=member_host)
            self.data_volumes.append(data)
            backup_server = PgServer(member, address, member_data_dir(index))
            self.backup_servers.append(backup_server)
            spec = ServiceSpec(
                role="postgres",
                image=image,
                resources=args.resources,
                attachments=[Attachment(network, address)],
                # Patroni's REST API answers 200 on /health while PostgreSQL runs, in any role, and
                # pgBackRest's TLS server answers (images/postgres/health.sh).
                healthcheck=["medisys-postgres-health", f"https://{address}:{REST_PORT}/health"],
                envs=["PG_ROLE=member", f"PATRONI_CONFIG={PATRONI_DIR}"],
                files=[
                    ConfigFile(f"{PATRONI_DIR}/10-patroni.yml", render_patroni_yml(args, self.plan, index)),
                    *common_files,
                    *backups.member_files(backup_server, SOCKET_DIR, ca),
                    *tls_files(member, address),
                ],
                # The data volume only: the backup repositories live on the repository host.
                volumes=[docker.ContainerVolumeArgs(volume_name=data.name, container_path=member_volume_path(index))],
                user="postgres",
                # Patroni stops PostgreSQL with a fast shutdown, which needs time to checkpoint.
                stop_timeout_seconds=60,
                wait_timeout_seconds=300,
            )
            # One member at a time: a settings change (a new patroni.yml or postgresql.conf replaces
            # the container) restarts the members in turn, each running again before the next
            # stops, so the cluster always keeps a leader or a member ready to take over.
            self.members.append(
                service_container(member, member, name, spec,
                                  hosts.options(member_host, self, depends_on=[*self.etcd, *self.members[-1:]]))
            )

        # Every member slot the config allows, present or not (absent ones are simply down), so
        # scaling replicas never changes, and never restarts, the endpoint.
        self.proxy_config = render_proxy_cfg(cluster_plan(name, args, placement.address, members=MAX_MEMBERS))
        self.proxy = service_container(
            f"{name}-proxy",
            f"{name}-proxy",
            name,
            ServiceSpec(
                role="postgres-proxy",
                image=proxy_image,
                resources=PROXY_RESOURCES,
                attachments=[Attachment(network, self.proxy_address)],
                healthcheck=["curl", "-fsS", "-o", "/dev/null", f"http://{self.proxy_address}:{PROXY_STATS_PORT}/stats"],
                files=[ConfigFile("/etc/haproxy/haproxy.cfg", self.proxy_config), ConfigFile("/etc/haproxy/ca.crt", ca.cert_pem)],
                user="haproxy",
            ),
            hosts.options(placement["postgres-proxy"].host, self),
        )

        self.admin_gateway: docker.Container | None = None
        if args.admin_publish is not None:
            self.admin_gateway = self._admin_gateway(name, args, proxy_image, networks, placement, hosts)
        self._manage_database(name, args, protect_data)
        self.register_outputs(
            {"endpoint": self.proxy_address, "members": self.member_names, "member_addresses": self.member_addresses}
        )

    def _admin_gateway(self, name: str, args: Postgres, image: str, networks: SegmentedNetworks, placement: Placement,
                       hosts: DockerHosts) -> docker.Container:
        """On several hosts: the endpoint's write port published on its host for pulumi-postgresql
        (templates/pg-admin-gateway.cfg says why). The bridge is the host's own: Docker publishes
        ports only through a network with a route out, never through an internal overlay."""
        place = placement["postgres-admin"]
        bridge = docker.Network(
            f"{name}-admin",
            name=f"{name}-admin",
            driver="bridge",
            labels=[docker.NetworkLabelArgs(label="medisys.segment", value="postgres-admin"),
                    docker.NetworkLabelArgs(label="medisys.stack", value=pulumi.get_stack())],
            opts=hosts.options(place.host, self),
        )
        spec = ServiceSpec(
            role="postgres-admin-gateway",
            image=image,
            resources=PROXY_RESOURCES,
            attachments=[Attachment(networks["database"], place.on("database")), Attachment(bridge, None)],
            healthcheck=["bash", "-c", f"exec 3<>/dev/tcp/127.0.0.1/{PORT}"],
            files=[ConfigFile("/etc/haproxy/haproxy.cfg", render("pg-admin-gateway.cfg", port=PORT, proxy_address=self.proxy_address))],
            ports=[docker.ContainerPortArgs(internal=PORT, external=args.admin_port, ip=str(args.admin_publish))],
            user="haproxy",
        )
        return service_container(f"{name}-admin-gateway", f"{name}-admin-gateway", name, spec,
                                 hosts.options(place.host, self, depends_on=[self.proxy]))

    def _manage_database(self, name: str, args: Postgres, protect_data: bool) -> None:
        """The application database and least-privilege roles, managed through the leader endpoint."""
        provider = postgresql.Provider(
            f"{name}-admin",
            host=args.admin_host or self.proxy_address,
            port=args.admin_port,
            username="postgres",
            password=self.passwords["superuser"].result,
            # Encrypted; the provider takes no CA file from a secret, so the server is not verified.
            sslmode="require",
            superuser=True,
            connect_timeout=30,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*self.members, self.proxy, *([self.admin_gateway] if self.admin_gateway else [])]),
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
