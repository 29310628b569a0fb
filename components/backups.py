"""Database backups on a dedicated repository host: two encrypted pgBackRest repositories (local and
offsite), the backup agent that holds them, and pgBackRest's TLS server on both sides.

Built in two steps around the cluster. `BackupRepositories` (before it) makes the repositories and
the values a member needs to push WAL: where the repository host is, the names its certificates
carry. `BackupAgent` (after it) is the repository host itself: it reaches every member through the
member's TLS server, backs up whichever leads, and receives their WAL through its own.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_docker as docker
import pulumi_random as random
import pulumi_tls as tls

from components.container import Attachment, ConfigFile, ServiceSpec, service_container
from components.hosts import DockerHosts
from components.network import SegmentedNetworks
from components.pki import InternalCA
from components.templates import render
from config import Backups, OffsiteRepository, Resources
from placement import Placement

STANZA = "main"
CONFIG_PATH = "/etc/pgbackrest/pgbackrest.conf"
CIPHER_PATH = "/etc/pgbackrest/conf.d/cipher.conf"
REPOSITORY_PATH = "/var/lib/pgbackrest"
METRICS_PORT = 9854
CIPHER_PASS_LENGTH = 48

# pgBackRest's TLS server, on the repository host and on every member (pgBackRest's default port).
TLS_PORT = 8432
# Certificates are uploaded here; pgBackRest refuses a key others can read and uploads are
# world-readable, so the entrypoint installs the keys into TLS_KEY_DIR (mode 0600) and the
# configuration names them there.
TLS_DIR = "/etc/pgbackrest/tls"
TLS_KEY_DIR = "/var/lib/postgresql/pgbackrest-tls"
CA_FILE = f"{TLS_DIR}/ca.crt"
SERVER_CERT_FILE = f"{TLS_DIR}/server.crt"
CLIENT_CERT_FILE = f"{TLS_DIR}/client.crt"
SERVER_KEY_FILE = f"{TLS_KEY_DIR}/server.key"
CLIENT_KEY_FILE = f"{TLS_KEY_DIR}/client.key"

# The agent reads the primary's WAL position over PostgreSQL's TLS port as the monitoring role; the
# entrypoint installs this password file (mode 0600, as libpq requires) for medisys-backup-metrics.
MONITOR_PGPASS = "/etc/medisys-backup/pgpass"

# repo2, offsite over SFTP: its cipher pass and the pinned host key fingerprint (secret file),
# the client key pgBackRest logs in with.
OFFSITE_CONF_PATH = "/etc/pgbackrest/conf.d/offsite.conf"
OFFSITE_KEY_DIR = "/etc/pgbackrest/offsite"
OFFSITE_PRIVATE_KEY = f"{OFFSITE_KEY_DIR}/id_ed25519"
OFFSITE_PUBLIC_KEY = f"{OFFSITE_KEY_DIR}/id_ed25519.pub"
# The in-stack SFTP server (images/offsite-sftp): sshd as an unprivileged user on 2222.
SFTP_PORT = 2222
SFTP_USER = "pgbackrest"
SFTP_REPOSITORY_PATH = "/srv/pgbackrest"
SFTP_UPLOAD_DIR = "/etc/offsite-sftp"
SFTP_RESOURCES = Resources(memory_mb=128, cpus=0.25)


@dataclass(frozen=True)
class OffsiteEndpoint:
    """Where repo2 is reached: the in-stack SFTP server or the configured offsite host."""

    host: str
    port: int
    user: str
    path: str


def offsite_endpoint(offsite: OffsiteRepository, sftp_address: str) -> OffsiteEndpoint:
    if offsite.host is None:
        return OffsiteEndpoint(sftp_address, SFTP_PORT, SFTP_USER, SFTP_REPOSITORY_PATH)
    return OffsiteEndpoint(offsite.host, offsite.port, offsite.user, offsite.path)


@dataclass(frozen=True)
class RepositoryHost:
    """The backup agent as the members see it: the address its TLS server listens on and the
    common names of its certificates (the client name is what every member authorizes)."""

    name: str
    address: str

    @property
    def client_name(self) -> str:
        return f"{self.name}-client"


@dataclass(frozen=True)
class PgServer:
    """A PostgreSQL member as the repository host reaches it: its address (its TLS server and its
    certificate's), its data directory (pgBackRest requires the one the server reports) and the
    common name of the client certificate it pushes WAL with."""

    name: str
    address: str
    data_dir: str

    @property
    def client_name(self) -> str:
        return f"{self.name}-backup-client"


def openssh_fingerprint_hex(public_key_openssh: str) -> str:
    """pgBackRest's form of a host key fingerprint: hex SHA-256 of the key blob (the base64 field
    of an OpenSSH public key line), what `awk '{print $2}' KEY.pub | base64 -d | sha256sum` prints."""
    return hashlib.sha256(base64.b64decode(public_key_openssh.split()[1])).hexdigest()


def render_offsite_conf(cipher_pass: str, fingerprint_hex: str) -> str:
    return f"[global]\nrepo2-cipher-pass={cipher_pass}\nrepo2-sftp-host-fingerprint={fingerprint_hex}\n"


def render_pgpass(user: str, password: str) -> str:
    return f"*:*:*:{user}:{password}\n"


def _tls_values() -> dict[str, object]:
    return {"tls_port": TLS_PORT, "ca_file": CA_FILE, "server_cert_file": SERVER_CERT_FILE, "server_key_file": SERVER_KEY_FILE}


def render_repository_conf(settings: Backups, address: str, members: Sequence[PgServer], offsite: OffsiteEndpoint) -> str:
    """The repository host's pgbackrest.conf: both repositories, its TLS server (every member's
    client certificate authorized for the stanza) and every member as pgN over TLS."""
    servers = "\n".join(
        f"pg{i}-host={m.address}\npg{i}-host-type=tls\npg{i}-host-port={TLS_PORT}\npg{i}-host-ca-file={CA_FILE}\n"
        f"pg{i}-host-cert-file={CLIENT_CERT_FILE}\npg{i}-host-key-file={CLIENT_KEY_FILE}\npg{i}-path={m.data_dir}"
        for i, m in enumerate(members, start=1)
    )
    return render(
        "pgbackrest.conf",
        repository_path=REPOSITORY_PATH,
        retention_days=settings.retention_days,
        offsite_retention_days=settings.offsite.retention_days,
        offsite_host=offsite.host,
        offsite_port=offsite.port,
        offsite_user=offsite.user,
        offsite_path=offsite.path,
        private_key_file=OFFSITE_PRIVATE_KEY,
        public_key_file=OFFSITE_PUBLIC_KEY,
        address=address,
        server_auth="\n".join(f"tls-server-auth={m.client_name}={STANZA}" for m in members),
        stanza=STANZA,
        pg_servers=servers,
        **_tls_values(),
    )


def render_member_conf(member: PgServer, repository_host: RepositoryHost, socket_dir: str) -> str:
    """A member's pgbackrest.conf: its own data directory, its TLS server (the repository host's
    client certificate authorized for the stanza) and both repositories on the repository host."""
    repositories = "\n".join(
        f"repo{r}-host={repository_host.address}\nrepo{r}-host-type=tls\nrepo{r}-host-port={TLS_PORT}\nrepo{r}-host-ca-file={CA_FILE}\n"
        f"repo{r}-host-cert-file={CLIENT_CERT_FILE}\nrepo{r}-host-key-file={CLIENT_KEY_FILE}"
        for r in (1, 2)
    )
    return render(
        "pgbackrest-member.conf",
        repositories=repositories,
        address=member.address,
        agent_client=repository_host.client_name,
        stanza=STANZA,
        data_dir=member.data_dir,
        socket_dir=socket_dir,
        **_tls_values(),
    )


def tls_files(ca: InternalCA, server_name: str, client_name: str, address: str) -> list[ConfigFile]:
    """pgBackRest's TLS material from the stack's CA: a server certificate for the TLS server
    (its name and the address it listens on), a client certificate (the name the other side
    authorizes) and the CA both sides verify against."""
    server = ca.issue(f"{server_name}-pgbackrest-server", server_name, dns_names=[server_name], ip_addresses=[address])
    client = ca.issue(f"{server_name}-pgbackrest-client", client_name)
    return [
        ConfigFile(CA_FILE, ca.cert_pem),
        ConfigFile(SERVER_CERT_FILE, server.cert_pem),
        ConfigFile(f"{TLS_DIR}/server.key", server.key_pem, secret=True),
        ConfigFile(CLIENT_CERT_FILE, client.cert_pem),
        ConfigFile(f"{TLS_DIR}/client.key", client.key_pem, secret=True),
    ]


class BackupRepositories(pulumi.ComponentResource):
    """Two backup repositories, each encrypted with a generated key of its own, and what a member
    needs to push WAL into them: built before the cluster.

    repo1 is local to the repository host (a volume of its host, fast restores); repo2 is offsite
    over SFTP (it survives the loss of the site): an OpenSSH server of this stack on the offsite
    segment, or the host set in `backups.offsite`. pgBackRest logs in with a generated ed25519 key
    and checks the server's host key against a pinned fingerprint. Every secret of the
    repositories (cipher passes, the SFTP key) goes to the repository host only (`agent_files`);
    a member gets a pgbackrest.conf that names the repository host and the certificates it pushes
    WAL with (`member_files`), never a repository volume or a cipher pass.
    """

    def __init__(
        self,
        name: str,
        args: Backups,
        *,
        networks: SegmentedNetworks,
        placement: Placement,
        hosts: DockerHosts,
        sftp_image: str,
        protect_data: bool,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        # The type token predates the split into repositories and agent; it stays, because the
        # repository volumes' URNs derive from it (a new one would replace them, or refuse to
        # when they are protected).
        super().__init__("medisys:platform:DatabaseBackups", name, None, opts)
        self._name = name
        self._args = args
        self._networks = networks
        self._placement = placement
        self._hosts = hosts
        self._child = pulumi.ResourceOptions(parent=self)
        agent = placement["backup-agent"]
        self.repository_host = RepositoryHost(f"{name}-agent", agent.on("database"))
        self.repository = hosts.volume(f"{name}-repository", "backup-repo", agent.host, self, protect=protect_data)
        cipher = random.RandomPassword(f"{name}-cipher-pass", length=CIPHER_PASS_LENGTH, special=False, opts=self._child)
        cipher_file = ConfigFile(CIPHER_PATH, cipher.result.apply(lambda p: f"[global]\nrepo1-cipher-pass={p}\n"), secret=True)

        # repo2: its own cipher pass, the client key pgBackRest logs in with, the pinned host key.
        offsite_cipher = random.RandomPassword(f"{name}-offsite-cipher-pass", length=CIPHER_PASS_LENGTH, special=False, opts=self._child)
        self.client_key = tls.PrivateKey(f"{name}-offsite-client-key", algorithm="ED25519", opts=self._child)
        self.offsite_sftp: docker.Container | None = None
        self.offsite_repository: docker.Volume | None = None
        self.sftp_address = placement["offsite-sftp"].on("offsite")
        self.endpoint = offsite_endpoint(args.offsite, self.sftp_address)
        fingerprint: pulumi.Input[str]
        if args.offsite.host is None:
            self.host_key = tls.PrivateKey(f"{name}-offsite-host-key", algorithm="ED25519", opts=self._child)
            fingerprint = self.host_key.public_key_openssh.apply(openssh_fingerprint_hex)
            self.offsite_sftp = self._start_sftp_server(sftp_image, protect_data)
        else:
            assert args.offsite.host_key_fingerprint is not None  # the config model requires it with host
            fingerprint = args.offsite.host_key_fingerprint
        # What only the repository host holds: the cipher passes, the offsite login and fingerprint.
        self.agent_files = [
            cipher_file,
            ConfigFile(
                OFFSITE_CONF_PATH,
                pulumi.Output.all(offsite_cipher.result, fingerprint).apply(lambda v: render_offsite_conf(v[0], v[1])),
                secret=True,
            ),
            ConfigFile(OFFSITE_PRIVATE_KEY, self.client_key.private_key_openssh, secret=True),
            ConfigFile(OFFSITE_PUBLIC_KEY, self.client_key.public_key_openssh),
        ]
        self.client_public_key = self.client_key.public_key_openssh
        outputs: dict[str, pulumi.Input[str]] = {"repository": self.repository.name}
        if self.offsite_sftp is not None:
            outputs["offsite_sftp"] = self.offsite_sftp.name
        self.register_outputs(outputs)

    def _start_sftp_server(self, image: str, protect_data: bool) -> docker.Container:
        """The in-stack offsite target: sshd (SFTP only, this one client key) on the offsite segment."""
        self.offsite_repository = self._hosts.volume(
            f"{self._name}-offsite-repository", "offsite-repo", self._placement["offsite-sftp"].host, self, protect=protect_data
        )
        spec = ServiceSpec(
            role="offsite-sftp",
            image=image,
            resources=SFTP_RESOURCES,
            attachments=[Attachment(self._networks["offsite"], self.sftp_address, ["offsite-sftp"])],
            healthcheck=["bash", "-c", f"exec 3<>/dev/tcp/127.0.0.1/{SFTP_PORT}"],
            files=[
                ConfigFile(f"{SFTP_UPLOAD_DIR}/ssh_host_ed25519_key", self.host_key.private_key_openssh, secret=True),
                ConfigFile(f"{SFTP_UPLOAD_DIR}/authorized_keys", self.client_key.public_key_openssh),
            ],
            volumes=[docker.ContainerVolumeArgs(volume_name=self.offsite_repository.name, container_path=SFTP_REPOSITORY_PATH)],
            user=SFTP_USER,
        )
        return service_container(f"{self._name}-offsite-sftp", f"{self._name}-offsite-sftp", self._name, spec,
                                 self._hosts.options(self._placement["offsite-sftp"].host, self))

    def member_files(self, member: PgServer, socket_dir: str, ca: InternalCA) -> list[ConfigFile]:
        """What a PostgreSQL member archives with and is backed up through: its pgbackrest.conf, its
        TLS server certificate (its name and address) and the client certificate it pushes WAL with."""
        return [
            ConfigFile(CONFIG_PATH, render_member_conf(member, self.repository_host, socket_dir)),
            *tls_files(ca, member.name, member.client_name, member.address),
        ]


class BackupAgent(pulumi.ComponentResource):
    """The repository host: pgBackRest with both repositories, built after the cluster.

    It mounts its own repository volume only. Every member is pgN over TLS (the member's TLS server,
    this agent's client certificate, the member's certificate verified against the stack's CA);
    pgBackRest asks each which one is the primary and backs that one up, so scheduled backups
    follow a failover. Its own TLS server receives the members' WAL (archive-push runs here as
    their remote) and writes it to both repositories; only the members' client certificates are
    let in. It takes a full backup every `full_interval_hours` and differentials in between, to
    each repository in turn; each repository expires by its own time-based retention. It is
    healthy once pgBackRest's `check` passed against every repository, so `pulumi up` fails when
    it cannot reach a member, the offsite server or its host key is not the pinned one. It
    publishes per repository its status, the newest backups, the last run's result and the WAL
    archive lag for Prometheus (images/postgres/medisys_backup_metrics.py).
    """

    def __init__(
        self,
        name: str,
        args: Backups,
        *,
        image: str,
        repositories: BackupRepositories,
        members: Sequence[PgServer],
        monitoring_user: str,
        monitoring_password: pulumi.Input[str],
        ca: InternalCA,
        networks: SegmentedNetworks,
        placement: Placement,
        hosts: DockerHosts,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("medisys:platform:BackupAgent", name, None, opts)
        place = placement["backup-agent"]
        host = repositories.repository_host
        metrics_address = place.on("management")
        self.config_text = render_repository_conf(args, host.address, members, repositories.endpoint)
        pgpass = pulumi.Output.from_input(monitoring_password).apply(lambda p: render_pgpass(monitoring_user, p))
        spec = ServiceSpec(
            role="postgres-backup",
            image=image,
            resources=args.resources,
            attachments=[
                Attachment(networks["database"], host.address),
                Attachment(networks["management"], metrics_address, ["backup-agent"]),
                Attachment(networks["offsite"], place.on("offsite")),
            ],
            # Its first `check` passed and its TLS server answers (images/postgres/health.sh).
            healthcheck=["medisys-postgres-health"],
            envs=[
                "PG_ROLE=backup",
                f"STANZA={STANZA}",
                # Each scheduled backup goes to every repository in turn: 1 local, 2 offsite.
                "BACKUP_REPOS=1 2",
                f"BACKUP_FULL_INTERVAL_HOURS={args.full_interval_hours}",
                f"BACKUP_DIFF_INTERVAL_HOURS={args.diff_interval_hours}",
                f"METRICS_LISTEN={metrics_address}:{METRICS_PORT}",
                f"METRICS_PG_USER={monitoring_user}",
            ],
            files=[
                ConfigFile(CONFIG_PATH, self.config_text),
                *repositories.agent_files,
                *tls_files(ca, host.name, host.client_name, host.address),
                ConfigFile(MONITOR_PGPASS, pgpass, secret=True),
            ],
            volumes=[docker.ContainerVolumeArgs(volume_name=repositories.repository.name, container_path=REPOSITORY_PATH)],
            user="postgres",
            wait_timeout_seconds=300,
        )
        # Before the split the container was a child of the repositories: the alias keeps it the
        # same resource (replaced in place, name and address freed first) rather than a new one.
        self.container = service_container(
            f"{name}-agent",
            host.name,
            name,
            spec,
            hosts.options(place.host, self, aliases=[pulumi.Alias(parent=repositories)]),
        )
        self.metrics_target = f"{metrics_address}:{METRICS_PORT}"
        self.register_outputs({"agent": self.container.name, "metrics": self.metrics_target})
