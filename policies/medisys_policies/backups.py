"""Backup and recovery: pgBackRest schedule, retention and encryption, WAL archiving, and
Redis persistence. HIPAA 164.308(a)(7)(ii)(A) data backup plan."""

from __future__ import annotations

import re
from typing import Final

from pulumi_policy import Severity

from .access import as_bool
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
    Resource,
    containers,
)

SCHEDULE_ENV: Final = "BACKUP_FULL_INTERVAL_HOURS"
_REPO_KEY: Final = re.compile(r"^repo(\d+)-")


def repo_indexes(ini: IniFile) -> list[str]:
    """The pgBackRest repositories a config defines ("1" when it names none)."""
    found = {m.group(1) for _, key in ini.options() if (m := _REPO_KEY.match(key))}
    return sorted(found, key=int) or ["1"]


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
    description="The pgBackRest repository is encrypted (repoN-cipher-type aes-256-cbc) with a "
    "passphrase kept in a separate secret file.",
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
    for repo in repo_indexes(ini):
        key = f"repo{repo}-cipher-type"
        values = ini.values(key)
        if not values or any(value not in allowed for _, value in values):
            reporter.violation(
                f"pgbackrest.conf does not encrypt repository {repo} ({key} is not "
                f"{' or '.join(allowed)} everywhere)",
                f"set {key}={allowed[0] if allowed else 'aes-256-cbc'} in [global]",
            )
    has_pass_file = any(path.startswith(PGBACKREST_CONF_D) for path in uploads)
    if settings.flag("requireCipherPassFile") and not has_pass_file:
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
    "members push WAL asynchronously, so an unreachable offsite server does not hold back the local one.",
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
    remote = [
        (repo, kind)
        for repo in repo_indexes(ini)
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
    backup_wal_archiving,
    redis_persistence,
]
