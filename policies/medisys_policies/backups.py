"""Backup and recovery: pgBackRest schedule, retention and encryption, WAL archiving, the
repository host reached over TLS, and Redis persistence. HIPAA 164.308(a)(7)(ii)(A) data backup plan."""

from __future__ import annotations

import re
from typing import Final

from pulumi_policy import Severity

from .access import as_bool, as_str, elements, get
from .framework import Reporter, read_config, resource_policy, schema, stack_policy
from .parsers import IniFile, parse_ini, parse_postgresql_conf, parse_redis_conf
from .settings import Settings
from .shapes import (
    COMPONENT_LABEL,
    CONTAINER,
    PGBACKREST_CONF,
    PGBACKREST_CONF_D,
    POSTGRESQL_CONF,
    REDIS_CONF,
    VOLUME,
    Resource,
    containers,
)

SCHEDULE_ENV: Final = "BACKUP_FULL_INTERVAL_HOURS"
_REPO_KEY: Final = re.compile(r"^repo(\d+)-")
_PG_KEY: Final = re.compile(r"^pg(\d+)-")


def repo_indexes(ini: IniFile) -> list[str]:
    """The pgBackRest repositories a config defines ("1" when it names none)."""
    found = {m.group(1) for _, key in ini.options() if (m := _REPO_KEY.match(key))}
    return sorted(found, key=int) or ["1"]


def last_value(ini: IniFile, key: str) -> str | None:
    """The value pgBackRest would take for a key set once (the last assignment), None if unset."""
    values = ini.values(key)
    return values[-1][1] if values else None


def remote_repos(ini: IniFile) -> dict[str, str]:
    """Repositories on a repository host (repoN-host set): index -> host. Their storage,
    retention and cipher are that host's configuration, not this one's."""
    return {repo: host for repo in repo_indexes(ini) if (host := last_value(ini, f"repo{repo}-host"))}


def local_repos(ini: IniFile) -> list[str]:
    """Repositories whose storage this configuration defines (no repoN-host)."""
    remote = remote_repos(ini)
    return [repo for repo in repo_indexes(ini) if repo not in remote]


def pg_indexes(ini: IniFile) -> list[str]:
    found = {m.group(1) for _, key in ini.options() if (m := _PG_KEY.match(key))}
    return sorted(found, key=int)


def time_retention_days(ini: IniFile, repo: str) -> int | None:
    """The fewest days repo`repo` keeps full backups for, or None unless every section that
    sets its retention counts days (`retention-full-type=time`) with a readable number."""
    types = ini.values(f"repo{repo}-retention-full-type")
    fulls = ini.values(f"repo{repo}-retention-full")
    if not types or any(value != "time" for _, value in types):
        return None
    if not fulls or not all(value.isdigit() for _, value in fulls):
        return None
    return min(int(value) for _, value in fulls)


# --- backup-schedule-present -------------------------------------------------------------------


def _clusters(members: list[Resource]) -> list[Resource]:
    """One member per PostgreSQL cluster (members of a cluster share their medisys.component)."""
    seen: dict[str, Resource] = {}
    alone = []
    for member in members:
        component = member.label(COMPONENT_LABEL)
        if component:
            seen.setdefault(component, member)
        else:
            alone.append(member)
    return [*seen.values(), *alone]


def _unbacked_primaries(primaries: list[Resource], backups: list[Resource]) -> list[Resource]:
    """Clusters left without a backup agent: a backup with the cluster's medisys.component
    label belongs to it; the remaining backups cover the remaining clusters one each."""
    free = list(backups)
    unmatched = []
    for primary in primaries:
        component = primary.label(COMPONENT_LABEL)
        own = next((b for b in free if component and b.label(COMPONENT_LABEL) == component), None)
        if own is None:
            unmatched.append(primary)
        else:
            free.remove(own)
    return unmatched[len(free) :]


@stack_policy(
    "backup-schedule-present",
    description="Every PostgreSQL cluster has a pgBackRest backup container whose full-backup "
    "interval is within the limit.",
    severity=Severity.CRITICAL,
    config=schema(
        maxFullBackupIntervalHours={
            "type": "integer",
            "minimum": 1,
            "default": 24,
            "description": f"Largest allowed {SCHEDULE_ENV} on postgres-backup containers.",
        }
    ),
    remediation="Run a postgres-backup container (one per cluster of postgres members) "
    f"with env {SCHEDULE_ENV}=<hours> at or below the limit.",
)
def backup_schedule_present(
    resources: list[Resource], settings: Settings, reporter: Reporter
) -> None:
    backups = containers(resources, "postgres-backup")
    for primary in _unbacked_primaries(_clusters(containers(resources, "postgres")), backups):
        reporter.violation(
            "has no postgres-backup container, so its cluster's data is never backed up",
            "add a pgBackRest backup agent (role postgres-backup) for this cluster",
            about=primary,
        )
    limit = settings.integer("maxFullBackupIntervalHours")
    for backup in backups:
        value = backup.env_value(SCHEDULE_ENV)
        hours = int(value) if value is not None and value.strip().isdigit() else None
        if hours is None or hours == 0:
            reporter.violation(
                f"has no valid {SCHEDULE_ENV} (a whole number of hours), so no full "
                "backup is scheduled",
                f"set env {SCHEDULE_ENV}=<hours> with a value from 1 to {limit}",
                about=backup,
            )
        elif hours > limit:
            reporter.violation(
                f"takes a full backup every {hours} hours; the limit is {limit}",
                f"set {SCHEDULE_ENV} to {limit} or less",
                about=backup,
            )


# --- backup-retention-minimum ------------------------------------------------------------------


@resource_policy(
    "backup-retention-minimum",
    description="pgBackRest keeps full backups for at least the minimum number of days "
    "(time-based retention).",
    types=[CONTAINER],
    roles=["postgres-backup"],
    severity=Severity.CRITICAL,
    config=schema(
        minRetentionDays={
            "type": "integer",
            "minimum": 1,
            "default": 7,
            "description": "Smallest repoN-retention-full, in days.",
        }
    ),
    remediation="In pgbackrest.conf [global] set repo1-retention-full-type=time and "
    "repo1-retention-full=<days> at or above minRetentionDays.",
)
def backup_retention_minimum(res: Resource, settings: Settings, reporter: Reporter) -> None:
    text = read_config(res, PGBACKREST_CONF, reporter, "backup retention")
    if text is None:
        return
    ini = parse_ini(text)
    minimum = settings.integer("minRetentionDays")
    for repo in repo_indexes(ini):
        type_key, full_key = f"repo{repo}-retention-full-type", f"repo{repo}-retention-full"
        types = ini.values(type_key)
        if not types or any(value != "time" for _, value in types):
            reporter.violation(
                f"pgbackrest.conf does not set {type_key}=time everywhere (pgBackRest "
                "defaults to counting backups, not days)",
                f"set {type_key}=time in [global] and in no section set it otherwise",
            )
        fulls = ini.values(full_key)
        if not fulls:
            reporter.violation(
                f"pgbackrest.conf does not set {full_key}, so old backups are kept or "
                "expired without a minimum",
                f"set {full_key}={minimum} (days) or more in [global]",
            )
        for section, value in fulls:
            if not value.isdigit() or int(value) < minimum:
                shown = value if value.isdigit() else "an unreadable number of"
                reporter.violation(
                    f"pgbackrest.conf [{section}] keeps full backups for {shown} "
                    f"days; the minimum is {minimum}",
                    f"set {full_key}={minimum} or more",
                )


# --- backup-repository-encrypted ---------------------------------------------------------------


@resource_policy(
    "backup-repository-encrypted",
    description="Every pgBackRest repository a configuration stores is encrypted (repoN-cipher-type "
    "aes-256-cbc) with a passphrase kept in a separate secret file; a repository on a repository "
    "host (repoN-host) is judged on that host.",
    types=[CONTAINER],
    severity=Severity.CRITICAL,
    config=schema(
        allowedCipherTypes={
            "type": "array",
            "items": {"type": "string"},
            "default": ["aes-256-cbc"],
        },
        requireCipherPassFile={
            "type": "boolean",
            "default": True,
            "description": f"Require an upload under {PGBACKREST_CONF_D} (the passphrase).",
        },
    ),
    remediation="Set repo1-cipher-type=aes-256-cbc in pgbackrest.conf and upload "
    f"repo1-cipher-pass in a separate secret file under {PGBACKREST_CONF_D}.",
)
def backup_repository_encrypted(res: Resource, settings: Settings, reporter: Reporter) -> None:
    uploads = res.upload_paths()
    if res.role != "postgres-backup" and PGBACKREST_CONF not in uploads:
        return
    text = read_config(res, PGBACKREST_CONF, reporter, "backup encryption")
    if text is None:
        return
    ini = parse_ini(text)
    allowed = settings.texts("allowedCipherTypes")
    # A repository on a repository host is encrypted there (pgBackRest takes its cipher from that
    # host): only the repositories this configuration stores are judged here.
    local = local_repos(ini)
    for repo in local:
        key = f"repo{repo}-cipher-type"
        values = ini.values(key)
        if not values or any(value not in allowed for _, value in values):
            reporter.violation(
                f"pgbackrest.conf does not encrypt repository {repo} ({key} is not "
                f"{' or '.join(allowed)} everywhere)",
                f"set {key}={allowed[0] if allowed else 'aes-256-cbc'} in [global]",
            )
    has_pass_file = any(path.startswith(PGBACKREST_CONF_D) for path in uploads)
    if settings.flag("requireCipherPassFile") and local and not has_pass_file:
        reporter.violation(
            f"no cipher passphrase file is uploaded under {PGBACKREST_CONF_D}",
            f"upload repo1-cipher-pass=<secret> as a file under {PGBACKREST_CONF_D} "
            "(from a RandomPassword), never in pgbackrest.conf or an env var",
        )


# --- backup-offsite-repository -----------------------------------------------------------------

# Repository types that put the copy on another system; posix (the default) and cifs are
# filesystems of this host (or mounted on it) and count as local.
_REMOTE_REPO_TYPES: Final = ("sftp", "s3", "azure", "gcs")
_HOST_KEY_CHECKS: Final = ("fingerprint", "strict")


@resource_policy(
    "backup-offsite-repository",
    description="pgBackRest has an offsite repository (repoN-type sftp, s3, azure or gcs) beside "
    "the local one, with time-based retention of at least the minimum, and an SFTP server's "
    "host key is checked (fingerprint or strict), so WAL and backups survive the loss of the site; "
    "members push WAL asynchronously, so an unreachable offsite server does not hold back the local one. "
    "A member whose repositories are on a repository host pushes WAL to every one of them (the host's "
    "configuration is judged for the rest).",
    types=[CONTAINER],
    roles=["postgres-backup", "postgres"],
    severity=Severity.CRITICAL,
    config=schema(
        minOffsiteRetentionDays={
            "type": "integer",
            "minimum": 1,
            "default": 90,
            "description": "Smallest repoN-retention-full, in days, of the offsite repository.",
        }
    ),
    remediation="In pgbackrest.conf [global] add repo2-type=sftp (or s3) with its host and key, "
    "repo2-retention-full-type=time, repo2-retention-full=<days> at or above "
    "minOffsiteRetentionDays, repo2-cipher-type=aes-256-cbc and, for sftp, "
    "repo2-sftp-host-key-check-type=fingerprint; archive-async=y in [global:archive-push].",
)
def backup_offsite_repository(res: Resource, settings: Settings, reporter: Reporter) -> None:
    text = read_config(res, PGBACKREST_CONF, reporter, "the offsite backup repository")
    if text is None:
        return
    ini = parse_ini(text)
    minimum = settings.integer("minOffsiteRetentionDays")
    if res.role == "postgres" and not local_repos(ini):
        # Every repository on the repository host: its configuration holds the offsite one. The
        # member must still push WAL to each, or the offsite copy gets WAL only with each backup.
        hosts = remote_repos(ini)
        if len(hosts) < 2:
            reporter.violation(
                f"pgbackrest.conf pushes WAL to one repository only (repo{next(iter(hosts))} on the "
                "repository host), so the offsite repository receives WAL only with each backup and "
                "point-in-time recovery from it stops at the last backup",
                "name every repository of the repository host (repo1-host and repo2-host, both over TLS)",
            )
        elif not archive_push_is_async(ini):
            reporter.violation(
                "archive-push is synchronous, so while the offsite repository is unreachable the local "
                "repository receives at most one more WAL segment and point-in-time recovery from it "
                "stops there too",
                "set archive-async=y in [global:archive-push] and a spool-path in [global]",
            )
        return
    remote = [
        (repo, kind)
        for repo in local_repos(ini)
        for kind in [(ini.values(f"repo{repo}-type") or [("", "posix")])[-1][1]]
        if kind in _REMOTE_REPO_TYPES
    ]
    if not remote:
        reporter.violation(
            "pgbackrest.conf has no offsite repository (every repoN is a filesystem of this "
            "host), so losing the host loses the database and every backup together",
            "add repo2-type=sftp (or s3) pointing at a server away from this site",
        )
        return
    if len(repo_indexes(ini)) < 2:
        reporter.violation(
            "pgbackrest.conf has an offsite repository but no local one, so every restore "
            "waits for the offsite link",
            "keep repo1 on a local volume beside the offsite repository",
        )
    for repo, kind in remote:
        days = time_retention_days(ini, repo)
        if days is None or days < minimum:
            shown = "no time-based minimum" if days is None else f"{days} days"
            reporter.violation(
                f"the offsite repository repo{repo} keeps full backups for {shown}; the minimum "
                f"is {minimum} days",
                f"set repo{repo}-retention-full-type=time and repo{repo}-retention-full={minimum} or more",
            )
        if kind == "sftp":
            checks = ini.values(f"repo{repo}-sftp-host-key-check-type")
            # pgBackRest's default is strict (known_hosts); accept-new and none trust any server.
            if any(v not in _HOST_KEY_CHECKS for _, v in checks):
                reporter.violation(
                    f"repo{repo}-sftp-host-key-check-type is not fingerprint or strict, so the "
                    "backups may go to any server that answers at that address",
                    f"set repo{repo}-sftp-host-key-check-type=fingerprint and pin the server's host key",
                )
    # Members archive WAL (the agent only backs up): with synchronous archive-push an unreachable
    # offsite server also stops the local repository one segment past it.
    if res.role == "postgres" and len(repo_indexes(ini)) >= 2 and not archive_push_is_async(ini):
        reporter.violation(
            "archive-push is synchronous, so while the offsite repository is unreachable the local "
            "repository receives at most one more WAL segment and point-in-time recovery from it "
            "stops there too",
            "set archive-async=y in [global:archive-push] and a spool-path in [global]",
        )


def archive_push_is_async(ini: IniFile) -> bool:
    """Whether archive-push runs asynchronously (archive-async=y). pgBackRest takes an option from
    [<stanza>:archive-push], else [<stanza>], else [global:archive-push], else [global]; with
    several stanzas every one must be asynchronous."""

    def rank(section: str) -> int:
        if section == "global":
            return 0
        if section == "global:archive-push":
            return 1
        if ":" not in section:
            return 2
        return 3 if section.endswith(":archive-push") else -1  # other commands' sections do not apply

    applicable = [(rank(section), value) for section, value in ini.values("archive-async") if rank(section) >= 0]
    if not applicable:
        return False  # pgBackRest's default is n
    top = max(r for r, _ in applicable)
    return all(value == "y" for r, value in applicable if r == top)


# --- backup-repository-host-tls ----------------------------------------------------------------

# Volumes of these roles hold the repositories; only the repository host mounts them (the SFTP
# server its own offsite copy). Members' data volumes belong to the members alone.
_REPOSITORY_VOLUME_ROLES: Final = frozenset({"backup-repo", "offsite-repo"})
_MEMBER_VOLUME_ROLES: Final = frozenset({"postgres-data", "postgres-socket"})
_TLS_SERVER_KEYS: Final = ("tls-server-address", "tls-server-cert-file", "tls-server-key-file", "tls-server-ca-file", "tls-server-auth")


def _mounted(res: Resource) -> list[tuple[str | None, str | None]]:
    """(volume name, container path) of each volume the container mounts."""
    return [
        (as_str(get(volume, "volumeName")), as_str(get(volume, "containerPath")))
        for _, volume in elements(res.get("volumes"))
    ]


def _tls_client_problems(ini: IniFile, prefix: str) -> list[str]:
    """What keeps `prefix` (repo1, pg2) from being a verified TLS connection with a client
    certificate: pgBackRest's TLS client always verifies the server against the CA and address,
    and the server checks the client certificate's CN."""
    problems = []
    kind = last_value(ini, f"{prefix}-host-type") or "ssh"
    if kind != "tls":
        problems.append(f"{prefix}-host-type={kind} (not pgBackRest's TLS server)")
    if not (last_value(ini, f"{prefix}-host-ca-file") or last_value(ini, f"{prefix}-host-ca-path")):
        problems.append(f"no {prefix}-host-ca-file (the server's certificate is not checked against the stack's CA)")
    for what in ("cert", "key"):
        if not last_value(ini, f"{prefix}-host-{what}-file"):
            problems.append(f"no {prefix}-host-{what}-file (no client certificate)")
    return problems


def _missing_tls_server(ini: IniFile) -> list[str]:
    return [key for key in _TLS_SERVER_KEYS if not last_value(ini, key)]


@stack_policy(
    "backup-repository-host-tls",
    description="Backups work across Docker hosts: the repository host (postgres-backup) holds the "
    "repositories on a volume of its own and reaches every PostgreSQL member through pgBackRest's TLS "
    "server with a client certificate, verifying the member's; each member pushes WAL to it over "
    "TLS, runs a TLS server that lets in named clients only (tls-server-auth) and mounts no "
    "repository volume (a volume is local to its host: on another host the same name is an empty one).",
    severity=Severity.CRITICAL,
    config=schema(
        requireRepositoryHost={
            "type": "boolean",
            "default": True,
            "description": "Set false to skip this policy for a single-host stack that shares the repository volume.",
        }
    ),
    remediation="Give the backup agent the repositories (repoN-path/type, no repoN-host) and every member "
    "as pgN-host with pgN-host-type=tls, pgN-host-ca-file, pgN-host-cert-file and pgN-host-key-file; give "
    "each member repoN-host=<agent address> with repoN-host-type=tls and the same three files, and a TLS "
    "server (tls-server-address, -cert-file, -key-file, -ca-file, tls-server-auth=<agent client CN>=<stanza>); "
    "mount the repository volume on the agent only (components/backups.py renders all of it).",
)
def backup_repository_host_tls(resources: list[Resource], settings: Settings, reporter: Reporter) -> None:
    if not settings.flag("requireRepositoryHost"):
        return
    volume_roles = {
        name: role
        for volume in resources
        if volume.type == VOLUME and (name := as_str(volume.get("name"))) and (role := volume.role)
    }
    agents, members = containers(resources, "postgres-backup"), containers(resources, "postgres")
    configs = {}
    for res in [*agents, *members]:
        file = res.config_file(PGBACKREST_CONF)
        if file.text is not None:
            configs[res.urn] = parse_ini(file.text)
        elif file.uploaded:
            reporter.violation(f"{PGBACKREST_CONF} is not literal content, so its repository host cannot be verified",
                               "render pgbackrest.conf in the program and upload it as `content`", about=res)
    server_addresses: set[str] = set()
    agent_pg_hosts: set[str] = set()
    repository_paths = {"/var/lib/pgbackrest"}  # pgBackRest's default repo1-path
    for agent in agents:
        ini = configs.get(agent.urn)
        if ini is None:
            continue
        remote = remote_repos(ini)
        if remote:
            reporter.violation(
                f"the repository host's pgbackrest.conf sends {', '.join(f'repo{r}' for r in remote)} to another host "
                f"({', '.join(sorted(set(remote.values())))}), so it does not hold the repositories it backs up into",
                "keep every repository on the repository host (repoN-path or an offsite repoN-type, no repoN-host)",
                about=agent,
            )
        repository_paths |= {path for repo in local_repos(ini) if (path := last_value(ini, f"repo{repo}-path"))}
        servers = pg_indexes(ini)
        if not servers:
            reporter.violation("the repository host's pgbackrest.conf names no PostgreSQL member (pgN-host)",
                               "list every member as pgN-host with pgN-path, over TLS", about=agent)
        for index in servers:
            host = last_value(ini, f"pg{index}-host")
            if host is None:
                reporter.violation(
                    f"pg{index} has no pg{index}-host, so the repository host reads that member's data directory "
                    "from a volume of its own host, which on several hosts is not the member's",
                    f"set pg{index}-host=<member address> with pg{index}-host-type=tls", about=agent)
                continue
            agent_pg_hosts.add(host)
            problems = _tls_client_problems(ini, f"pg{index}")
            if problems:
                reporter.violation(f"the repository host reaches member {host} with {'; '.join(problems)}",
                                   f"set pg{index}-host-type=tls, pg{index}-host-ca-file, pg{index}-host-cert-file and "
                                   f"pg{index}-host-key-file", about=agent)
        missing = _missing_tls_server(ini)
        if missing:
            reporter.violation(f"the repository host runs no complete TLS server (missing {', '.join(missing)}), so the "
                               "members cannot push WAL to it, or any client may", "set tls-server-address, "
                               "-cert-file, -key-file, -ca-file and tls-server-auth=<member client CN>=<stanza> per member",
                               about=agent)
        elif address := last_value(ini, "tls-server-address"):
            server_addresses.add(address)
        for volume, _ in _mounted(agent):
            if volume is not None and volume_roles.get(volume) in _MEMBER_VOLUME_ROLES:
                reporter.violation(
                    f"mounts volume '{volume}' (role {volume_roles[volume]}), a member's: it is local to the member's "
                    "host, so on another host this is an empty volume of the same name",
                    "reach the members through their TLS servers (pgN-host) and mount the repository volume only",
                    about=agent,
                )
    for member in members:
        ini = configs.get(member.urn)
        for volume, path in _mounted(member):
            role = volume_roles.get(volume or "")
            if role in _REPOSITORY_VOLUME_ROLES or (role is None and path in repository_paths):
                shown = f"volume '{volume}'" + (f" (role {role})" if role else f" at the repository path {path}")
                reporter.violation(
                    f"mounts {shown}: a volume is local to its host, so on another host than the repository "
                    "host's this is an empty repository of the same name and WAL or backups land there",
                    "mount the repository volume on the backup agent only; members push WAL to it over TLS "
                    "(repoN-host, repoN-host-type=tls)",
                    about=member,
                )
        if ini is None:
            continue
        for repo in local_repos(ini):
            reporter.violation(
                f"repo{repo} has no repo{repo}-host, so the member writes WAL into a repository of its own host's "
                "filesystem instead of the repository host's",
                f"set repo{repo}-host=<repository host address> with repo{repo}-host-type=tls", about=member)
        for repo, host in remote_repos(ini).items():
            problems = _tls_client_problems(ini, f"repo{repo}")
            if problems:
                reporter.violation(f"the member reaches repository host {host} with {'; '.join(problems)}",
                                   f"set repo{repo}-host-type=tls, repo{repo}-host-ca-file, repo{repo}-host-cert-file and "
                                   f"repo{repo}-host-key-file", about=member)
            elif server_addresses and host not in server_addresses:
                reporter.violation(f"repo{repo}-host={host} is not the repository host's TLS server address "
                                   f"({', '.join(sorted(server_addresses))}), so its WAL goes elsewhere or nowhere",
                                   f"set repo{repo}-host to the backup agent's address", about=member)
        missing = _missing_tls_server(ini)
        if missing:
            reporter.violation(f"runs no complete TLS server (missing {', '.join(missing)}), so the repository host "
                               "cannot back it up after a failover, or any client could reach its data",
                               "set tls-server-address, -cert-file, -key-file, -ca-file and "
                               "tls-server-auth=<repository host client CN>=<stanza>", about=member)
        elif agent_pg_hosts and (address := last_value(ini, "tls-server-address")) not in agent_pg_hosts:
            reporter.violation(f"its TLS server ({address}) is not among the repository host's members (pgN-host), so "
                               "it is never backed up, also not once it leads", "list it as pgN-host on the backup agent",
                               about=member)


# --- backup-wal-archiving ----------------------------------------------------------------------

_NO_OP_COMMANDS: Final = frozenset({"", "true", "/bin/true", ":", "exit 0", "/usr/bin/true"})


@resource_policy(
    "backup-wal-archiving",
    description="Every PostgreSQL member archives WAL continuously (archive_mode = on and a real "
    "archive_command; whichever member leads archives), so it can be restored to a point in time.",
    types=[CONTAINER],
    roles=["postgres"],
    severity=Severity.CRITICAL,
    config=schema(
        required={
            "type": "boolean",
            "default": True,
            "description": "Set false to skip this policy for a stack without PITR.",
        },
        archiveCommandMustContain={
            "type": "string",
            "default": "pgbackrest",
            "description": "Text the archive_command must contain ('' for any command).",
        },
    ),
    remediation="In the members' postgresql.conf set archive_mode = on and "
    "archive_command = 'pgbackrest --stanza=<stanza> archive-push %p'.",
)
def backup_wal_archiving(res: Resource, settings: Settings, reporter: Reporter) -> None:
    if not settings.flag("required"):
        return
    text = read_config(res, POSTGRESQL_CONF, reporter, "WAL archiving")
    if text is None:
        return
    conf = parse_postgresql_conf(text)
    if conf.get("archive_mode", "off").lower() not in ("on", "always"):
        reporter.violation(
            "postgresql.conf does not set archive_mode = on, so WAL is not archived",
            "set archive_mode = on",
        )
    if conf.get("wal_level", "replica").lower() == "minimal":
        reporter.violation(
            "postgresql.conf sets wal_level = minimal, which cannot be archived",
            "set wal_level = replica",
        )
    command = conf.get("archive_command", "").strip()
    must_contain = settings.text("archiveCommandMustContain")
    if conf.get("archive_library"):
        return
    if command in _NO_OP_COMMANDS:
        reporter.violation(
            "postgresql.conf has no archive_command (or one that discards WAL)",
            "set archive_command = 'pgbackrest --stanza=<stanza> archive-push %p'",
        )
    elif must_contain and must_contain not in command:
        reporter.violation(
            f"postgresql.conf archive_command does not use {must_contain}",
            f"archive WAL with {must_contain} (archive-push %p)",
        )


# --- backup-redis-persistence ------------------------------------------------------------------


@resource_policy(
    "backup-redis-persistence",
    description="Redis nodes persist data with the append-only file.",
    types=[CONTAINER],
    roles=["redis"],
    severity=Severity.MEDIUM,
    config=schema(
        allowedAppendfsync={
            "type": "array",
            "items": {"type": "string"},
            "default": ["everysec", "always"],
        }
    ),
    remediation="Set 'appendonly yes' and 'appendfsync everysec' in redis.conf and keep /data "
    "on a named volume.",
)
def redis_persistence(res: Resource, settings: Settings, reporter: Reporter) -> None:
    text = read_config(res, REDIS_CONF, reporter, "Redis persistence")
    if text is None:
        return
    conf = parse_redis_conf(text)
    if not as_bool(conf.value("appendonly")):
        reporter.violation("redis.conf does not enable appendonly", "set 'appendonly yes'")
    fsync = (conf.value("appendfsync") or "everysec").lower()
    allowed = settings.texts("allowedAppendfsync")
    if fsync not in allowed:
        shown = fsync if fsync in ("always", "everysec", "no") else "an unknown value"
        reporter.violation(
            f"redis.conf sets appendfsync {shown}", f"use one of: {', '.join(allowed)}"
        )


POLICIES = [
    backup_schedule_present,
    backup_retention_minimum,
    backup_repository_encrypted,
    backup_offsite_repository,
    backup_repository_host_tls,
    backup_wal_archiving,
    redis_persistence,
]
