"""Database backups: two encrypted pgBackRest repositories (local and offsite), WAL archiving to
both, and a scheduled agent."""

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
from components.templates import render
from config import Backups, OffsiteRepository, Resources
from placement import Place, Placement

STANZA = "main"
CONFIG_PATH = "/etc/pgbackrest/pgbackrest.conf"
CIPHER_PATH = "/etc/pgbackrest/conf.d/cipher.conf"
REPOSITORY_PATH = "/var/lib/pgbackrest"
METRICS_PORT = 9854
CIPHER_PASS_LENGTH = 48

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


# Member N keeps its data in MEMBERS_MOUNT/N (its volume) and the agent mounts every member's
# volume at the same path: pgBackRest requires pgN-path to equal the data_directory the server
# reports. The agent sees member N's socket directory at SOCKETS_MOUNT/N.
MEMBERS_MOUNT = "/var/lib/postgresql/members"
SOCKETS_MOUNT = "/var/run/postgresql/members"


def member_volume_path(index: int) -> str:
    return f"{MEMBERS_MOUNT}/{index}"


def member_data_dir(index: int) -> str:
    return f"{member_volume_path(index)}/pgdata"


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


def openssh_fingerprint_hex(public_key_openssh: str) -> str:
    """pgBackRest's form of a host key fingerprint: hex SHA-256 of the key blob (the base64 field
    of an OpenSSH public key line), what `awk '{print $2}' KEY.pub | base64 -d | sha256sum` prints."""
    return hashlib.sha256(base64.b64decode(public_key_openssh.split()[1])).hexdigest()


def render_offsite_conf(cipher_pass: str, fingerprint_hex: str) -> str:
    return f"[global]\nrepo2-cipher-pass={cipher_pass}\nrepo2-sftp-host-fingerprint={fingerprint_hex}\n"


def render_pgbackrest_conf(settings: Backups, pg_hosts: list[tuple[str, str]], offsite: OffsiteEndpoint) -> str:
    """pgBackRest's configuration: `pg_hosts` lists (data directory, socket directory) per server."""
    servers = "\n".join(
        f"pg{i}-path={path}\npg{i}-socket-path={socket}\npg{i}-user=postgres" for i, (path, socket) in enumerate(pg_hosts, start=1)
    )
    return render(
        "pgbackrest.conf",
        retention_days=settings.retention_days,
        offsite_retention_days=settings.offsite.retention_days,
        offsite_host=offsite.host,
        offsite_port=offsite.port,
        offsite_user=offsite.user,
        offsite_path=offsite.path,
        private_key_file=OFFSITE_PRIVATE_KEY,
        public_key_file=OFFSITE_PUBLIC_KEY,
        stanza=STANZA,
        pg_servers=servers,
    )


def member_pg_host(index: int) -> list[tuple[str, str]]:
    """A member archives its own WAL: its own data directory and socket."""
    return [(member_data_dir(index), "/var/run/postgresql")]


def agent_pg_hosts(members: int) -> list[tuple[str, str]]:
    """The agent lists every member; pgBackRest asks each which is the primary and backs that one up."""
    return [(member_data_dir(i), f"{SOCKETS_MOUNT}/{i}") for i in range(1, members + 1)]


class DatabaseBackups(pulumi.ComponentResource):
    """Two backup repositories, each encrypted with a generated key of its own, and their agent.

    repo1 is local (a volume of this host, fast restores); repo2 is offsite over SFTP (it survives
    the loss of the site): an OpenSSH server of this stack on the offsite segment, or the host set
    in `backups.offsite`. pgBackRest logs in with a generated ed25519 key and checks the server's
    host key against a pinned fingerprint. Every PostgreSQL member has the same archive_command;
    only the one that leads archives, and archive-push sends each WAL segment to both
    repositories, asynchronously: while one is unreachable the other still receives every
    segment, and PostgreSQL sees the failure and keeps each segment until both hold it. The agent mounts every member's data directory (read-only) and socket and lists
    them all to pgBackRest, which finds the primary among them: scheduled backups follow a
    failover too. It takes a full backup every `full_interval_hours` and differentials in between,
    to each repository in turn; each repository expires by its own time-based retention.
    The agent publishes per repository its status, the newest backups, the last run's result and
    the WAL archive lag for Prometheus (images/postgres/medisys_backup_metrics.py).
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
        super().__init__("medisys:platform:DatabaseBackups", name, None, opts)
        self._name = name
        self._args = args
        self._networks = networks
        self._placement = placement
        self._hosts = hosts
        self._child = pulumi.ResourceOptions(parent=self)
        self._agent_place = placement["backup-agent"]
        self.repository = hosts.volume(f"{name}-repository", "backup-repo", self._agent_place.host, self, protect=protect_data)
        cipher = random.RandomPassword(f"{name}-cipher-pass", length=CIPHER_PASS_LENGTH, special=False, opts=self._child)
        self.cipher_file = ConfigFile(CIPHER_PATH, cipher.result.apply(lambda p: f"[global]\nrepo1-cipher-pass={p}\n"), secret=True)
        self.repository_mount = docker.ContainerVolumeArgs(volume_name=self.repository.name, container_path=REPOSITORY_PATH)

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
        self.offsite_files = [
            ConfigFile(
                OFFSITE_CONF_PATH,
                pulumi.Output.all(offsite_cipher.result, fingerprint).apply(lambda v: render_offsite_conf(v[0], v[1])),
                secret=True,
            ),
            ConfigFile(OFFSITE_PRIVATE_KEY, self.client_key.private_key_openssh, secret=True),
            ConfigFile(OFFSITE_PUBLIC_KEY, self.client_key.public_key_openssh),
        ]
        self.client_public_key = self.client_key.public_key_openssh
        self.agent: docker.Container | None = None
        self.metrics_target: str | None = None

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

    def member_attachments(self, member: Place) -> list[Attachment]:
        """A member archives WAL to repo2 too: it joins the offsite segment at its planned address."""
        return [Attachment(self._networks["offsite"], member.on("offsite"))]

    @property
    def member_dependencies(self) -> list[pulumi.Resource]:
        """What a member's archive_command needs running before the member starts."""
        return [self.offsite_sftp] if self.offsite_sftp is not None else []

    def member_files(self, index: int) -> list[ConfigFile]:
        """What PostgreSQL member `index` archives with: its pgbackrest.conf, the cipher passes, the offsite key."""
        return [
            ConfigFile(CONFIG_PATH, render_pgbackrest_conf(self._args, member_pg_host(index), self.endpoint)),
            self.cipher_file,
            *self.offsite_files,
        ]

    def start_agent(
        self,
        *,
        image: str,
        data_volumes: Sequence[docker.Volume],
        socket_volumes: Sequence[docker.Volume],
        members: Sequence[docker.Container],
    ) -> docker.Container:
        """The scheduled agent: it reads every member's data directory and socket (shared volumes)."""
        networks = self._networks
        place = self._agent_place
        metrics_address = place.on("management")
        self.agent_config_text = render_pgbackrest_conf(self._args, agent_pg_hosts(len(data_volumes)), self.endpoint)
        mounts = [
            docker.ContainerVolumeArgs(volume_name=v.name, container_path=member_volume_path(i), read_only=True)
            for i, v in enumerate(data_volumes, start=1)
        ] + [docker.ContainerVolumeArgs(volume_name=v.name, container_path=f"{SOCKETS_MOUNT}/{i}") for i, v in enumerate(socket_volumes, start=1)]
        spec = ServiceSpec(
            role="postgres-backup",
            image=image,
            resources=self._args.resources,
            attachments=[
                Attachment(networks["database"], place.on("database")),
                Attachment(networks["management"], metrics_address, ["backup-agent"]),
                Attachment(networks["offsite"], place.on("offsite")),
            ],
            healthcheck=["test", "-f", "/var/lib/medisys-backup/healthy"],
            envs=[
                "PG_ROLE=backup",
                f"STANZA={STANZA}",
                # Each scheduled backup goes to every repository in turn: 1 local, 2 offsite.
                "BACKUP_REPOS=1 2",
                f"BACKUP_FULL_INTERVAL_HOURS={self._args.full_interval_hours}",
                f"BACKUP_DIFF_INTERVAL_HOURS={self._args.diff_interval_hours}",
                f"METRICS_LISTEN={metrics_address}:{METRICS_PORT}",
            ],
            files=[ConfigFile(CONFIG_PATH, self.agent_config_text), self.cipher_file, *self.offsite_files],
            volumes=[*mounts, self.repository_mount],
            user="postgres",
            wait_timeout_seconds=300,
        )
        self.agent = service_container(
            f"{self._name}-agent",
            f"{self._name}-agent",
            self._name,
            spec,
            self._hosts.options(place.host, self, depends_on=list(members)),
        )
        self.metrics_target = f"{metrics_address}:{METRICS_PORT}"
        outputs: dict[str, pulumi.Input[str]] = {"repository": self.repository.name, "agent": self.agent.name}
        if self.offsite_sftp is not None:
            outputs["offsite_sftp"] = self.offsite_sftp.name
        self.register_outputs(outputs)
        return self.agent
