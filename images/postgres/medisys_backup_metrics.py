#!/usr/bin/python3
"""Prometheus metrics of the pgBackRest backup agent, per repository.

The agent's loop (entrypoint.sh, role `backup`) runs this after every round; it writes the text
exposition format to a file that busybox httpd serves on the management segment. Sources:

* `pgbackrest --output=json info`: every repository pgBackRest is configured with (`repo` array:
  status per repository), the backups of each (`backup[].database.repo-key`, `timestamp.stop`)
  and the newest WAL segment each repository holds (`archive[].max`, one entry per repository and
  database id);
* the primary, found among the members pgbackrest.conf lists (`pgN-host`: their PostgreSQL port,
  over TLS as the monitoring role; the connection's settings come from libpq's PG* variables,
  which the entrypoint sets) or, in a configuration without hosts, their sockets: its current WAL
  file, the completed segments still in pg_wal with their modification times (pg_ls_waldir),
  pg_stat_archiver and archive_timeout. A repository's archive lag is the age of the oldest completed segment the
  primary has and the repository lacks (0 when it has them all): a quiet database does not look
  lagging, a stuck archive does within one round;
* the run records the loop writes (`repo<N>.status`: ok|failed, end time, exit code, type);
* the repository types in pgbackrest.conf (`repoN-type`, posix when absent), as a label.

Standard library only (the image's python3 is Debian's). Tested on real pgBackRest 2.55 output by
tests/unit/test_backup_metrics.py.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SEGMENT = re.compile(r"^[0-9A-F]{24}$")
REPO_KEY = re.compile(r"^repo([0-9]+)-(.+)$")
PG_HOST_KEY = re.compile(r"^pg([0-9]+)-host$")
# pgBackRest's stanza/repository status codes (`pgbackrest info`): 0 ok, 2 no valid backups;
# every other code is an error (missing stanza, cipher or database mismatch, 99 unreachable).
STATUS_OK, STATUS_NO_BACKUP = 0, 2


@dataclass(frozen=True)
class Run:
    """One backup run to a repository, as the agent's loop (or scripts/backup-now) recorded it."""

    success: bool
    finished: float | None = None
    exit_code: int | None = None
    type: str | None = None


@dataclass(frozen=True)
class Primary:
    """What the primary says about its WAL; segments maps completed segment names to mtimes."""

    current_wal: str
    archive_timeout: float
    segments: dict[str, float] = field(default_factory=dict)
    archived_count: int = 0
    failed_count: int = 0
    last_archived_time: float | None = None
    last_failed_time: float | None = None


def escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Exposition:
    """The text format, one family's samples together (HELP and TYPE once per family)."""

    def __init__(self) -> None:
        self._families: dict[str, tuple[str, str, list[str]]] = {}

    def add(self, name: str, kind: str, help_text: str, labels: dict[str, str], value: float) -> None:
        family = self._families.setdefault(name, (kind, help_text, []))
        rendered = ",".join(f'{k}="{escape(v)}"' for k, v in labels.items())
        number = repr(float(value)) if not float(value).is_integer() else str(int(value))
        family[2].append(f"{name}{{{rendered}}} {number}" if rendered else f"{name} {number}")

    def text(self) -> str:
        lines: list[str] = []
        for name, (kind, help_text, samples) in self._families.items():
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", *samples]
        return "\n".join(lines) + "\n"


def repo_types(config_texts: list[str]) -> dict[int, str]:
    """repoN-type from the [global] sections of pgbackrest.conf and its conf.d files (posix when a
    repository is configured without a type, pgBackRest's default). Read line by line, as
    pgBackRest does: a line this does not understand is skipped, never fatal."""
    types: dict[int, str] = {}
    for text in config_texts:
        section = ""
        for raw in text.splitlines():
            line = raw.strip()
            if line.startswith("[") and line.endswith("]"):
                section = line[1:-1]
                continue
            key, sep, value = line.partition("=")
            match = REPO_KEY.match(key.strip())
            if not sep or not match or not (section == "global" or section.startswith("global:")):
                continue
            repo = int(match.group(1))
            if match.group(2) == "type":
                types[repo] = value.strip()
            else:
                types.setdefault(repo, "posix")
    return types


def pg_hosts(config_texts: list[str]) -> list[str]:
    """The members' addresses (`pgN-host`, in N order) from pgbackrest.conf, any section: the
    repository host lists every member there."""
    hosts: dict[int, str] = {}
    for text in config_texts:
        for raw in text.splitlines():
            key, sep, value = raw.strip().partition("=")
            match = PG_HOST_KEY.match(key.strip())
            if sep and match and value.strip():
                hosts[int(match.group(1))] = value.strip()
    return [hosts[n] for n in sorted(hosts)]


def parse_run(text: str) -> Run | None:
    """`ok|failed [<unix end time> [<exit code> [<type>]]]`; None when it is neither."""
    words = text.split()
    if not words or words[0] not in ("ok", "failed"):
        return None
    try:
        finished = float(words[1]) if len(words) > 1 else None
        exit_code = int(words[2]) if len(words) > 2 else (0 if words[0] == "ok" else None)
    except ValueError:
        return None
    return Run(success=words[0] == "ok", finished=finished, exit_code=exit_code, type=words[3] if len(words) > 3 else None)


def read_runs(runs_dir: Path) -> dict[int, Run]:
    """The last run per repository: `repo<N>.status` files in runs_dir."""
    runs: dict[int, Run] = {}
    for path in sorted(runs_dir.glob("repo*.status")):
        match = re.fullmatch(r"repo([0-9]+)\.status", path.name)
        run = parse_run(path.read_text()) if match else None
        if match and run:
            runs[int(match.group(1))] = run
    return runs


def stanza_of(info: list[dict[str, Any]], stanza: str) -> dict[str, Any] | None:
    return next((s for s in info if s.get("name") == stanza), None)


def newest_archived(entry: dict[str, Any]) -> dict[int, str]:
    """The newest WAL segment per repository, of the newest database id each holds."""
    best: dict[int, tuple[int, str]] = {}
    for archive in entry.get("archive", []):
        database = archive.get("database", {})
        repo, db_id, newest = database.get("repo-key"), database.get("id", 0), archive.get("max")
        if repo is None or not newest:
            continue
        if repo not in best or db_id > best[repo][0]:
            best[repo] = (db_id, newest)
    return {repo: name for repo, (_, name) in best.items()}


def archive_lag(newest_in_repo: str, primary: Primary, now: float) -> tuple[float, int]:
    """(seconds, segments): how long the oldest completed segment the repository lacks has been
    complete, and how many it lacks. Names order by timeline, then position, as text."""
    missing = sorted(
        name for name in primary.segments if SEGMENT.match(name) and newest_in_repo < name < primary.current_wal
    )
    if not missing:
        return 0.0, 0
    return max(0.0, now - primary.segments[missing[0]]), len(missing)


def render(
    *,
    stanza: str,
    info: list[dict[str, Any]] | None,
    primary: Primary | None,
    runs: dict[int, Run],
    types: dict[int, str],
    full_interval_hours: int,
    diff_interval_hours: int,
    filesystems: dict[str, tuple[int, int]],
    now: float,
) -> str:
    out = Exposition()
    base = {"stanza": stanza}
    entry = stanza_of(info, stanza) if info is not None else None
    out.add("medisys_backup_info_success", "gauge", "Whether `pgbackrest info` answered with this stanza.", base, 1 if entry else 0)
    out.add("medisys_backup_full_interval_seconds", "gauge", "The schedule: a full backup is due this often.", base, full_interval_hours * 3600)
    out.add(
        "medisys_backup_interval_seconds", "gauge",
        "The schedule: some backup (full or differential) is due at least this often.",
        base, min(full_interval_hours, diff_interval_hours) * 3600,
    )

    repos: dict[int, dict[str, str]] = {}
    if entry:
        for repo in entry.get("repo", []):
            key = int(repo["key"])
            labels = {**base, "repo": str(key), "repo_type": types.get(key, "posix")}
            repos[key] = labels
            out.add(
                "medisys_backup_repo_status", "gauge",
                "pgBackRest's status code of the stanza in each repository: 0 ok, 2 no valid backup, others errors (99: unreachable).",
                labels, int(repo.get("status", {}).get("code", 99)),
            )
        newest: dict[tuple[int, str], float] = {}
        for backup in entry.get("backup", []):
            repo_and_type = (int(backup["database"]["repo-key"]), str(backup["type"]))
            newest[repo_and_type] = max(newest.get(repo_and_type, 0.0), float(backup["timestamp"]["stop"]))
        for (repo_key, kind), stop in sorted(newest.items()):
            out.add(
                "medisys_backup_last_success_timestamp_seconds", "gauge",
                "When the newest backup of each type in each repository finished.",
                {**repos.get(repo_key, {**base, "repo": str(repo_key), "repo_type": types.get(repo_key, "posix")}), "type": kind},
                stop,
            )

    for repo_key, run in sorted(runs.items()):
        labels = repos.get(repo_key, {**base, "repo": str(repo_key), "repo_type": types.get(repo_key, "posix")})
        out.add("medisys_backup_last_run_success", "gauge", "Whether the agent's last backup run to each repository succeeded.", labels, 1 if run.success else 0)
        if run.exit_code is not None:
            out.add("medisys_backup_last_run_exit_code", "gauge", "pgBackRest's exit code of the agent's last backup run to each repository.", labels, run.exit_code)
        if run.finished is not None:
            out.add("medisys_backup_last_run_timestamp_seconds", "gauge", "When the agent's last backup run to each repository ended.", labels, run.finished)

    out.add("medisys_backup_primary_found", "gauge", "Whether the agent found the primary among the members.", base, 1 if primary else 0)
    if primary:
        out.add("medisys_wal_archive_timeout_seconds", "gauge", "The primary's archive_timeout: a WAL segment with writes is closed at least this often.", base, primary.archive_timeout)
        out.add("medisys_wal_archiver_archived_total", "counter", "pg_stat_archiver.archived_count of the primary.", base, primary.archived_count)
        out.add("medisys_wal_archiver_failed_total", "counter", "pg_stat_archiver.failed_count of the primary: archive_command failures (a failure to any repository fails it).", base, primary.failed_count)
        if primary.last_archived_time is not None:
            out.add("medisys_wal_archiver_last_archived_timestamp_seconds", "gauge", "When the primary last archived a WAL file (to every repository).", base, primary.last_archived_time)
        if primary.last_failed_time is not None:
            out.add("medisys_wal_archiver_last_failed_timestamp_seconds", "gauge", "When archive_command last failed on the primary.", base, primary.last_failed_time)
        if entry:
            archived = newest_archived(entry)
            for repo_key, labels in sorted(repos.items()):
                if repo_key not in archived:
                    continue  # an unreachable repository reports no archive: its status says so
                seconds, segments = archive_lag(archived[repo_key], primary, now)
                out.add(
                    "medisys_wal_archive_lag_seconds", "gauge",
                    "Age of the oldest completed WAL segment of the primary that the repository lacks (0: it has them all).",
                    labels, seconds,
                )
                out.add("medisys_wal_archive_missing_segments", "gauge", "Completed WAL segments of the primary that the repository lacks.", labels, segments)

    for column in ("size", "avail"):
        for mount, sizes in sorted(filesystems.items()):
            out.add(
                f"medisys_filesystem_{column}_bytes", "gauge",
                f"Volume {column} in bytes, for the data directories and the repository.",
                {"mount": mount}, sizes[0] if column == "size" else sizes[1],
            )
    return out.text()


# --- collection (the agent's container) ----------------------------------------------------------

PRIMARY_QUERY = """
select pg_walfile_name(pg_current_wal_lsn()),
       extract(epoch from current_setting('archive_timeout')::interval),
       archived_count, failed_count,
       coalesce(extract(epoch from last_archived_time)::text, ''),
       coalesce(extract(epoch from last_failed_time)::text, '')
  from pg_stat_archiver
 where not pg_is_in_recovery()
"""
WAL_QUERY = "select name, extract(epoch from modification) from pg_ls_waldir()"


def psql(target: str, query: str, user: str = "postgres", port: int = 5432) -> list[list[str]] | None:
    """Rows of `query` on one member: `target` is its address or its socket directory."""
    try:
        result = subprocess.run(
            ["psql", "-X", "-q", "-At", "-F", "\t", "-h", target, "-p", str(port), "-U", user, "-d", "postgres", "-c", query],
            capture_output=True, text=True, timeout=20,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None  # a member that hangs is not the primary this round
    if result.returncode != 0:
        return None
    return [line.split("\t") for line in result.stdout.splitlines() if line]


def parse_primary(primary_rows: list[list[str]], wal_rows: list[list[str]]) -> Primary:
    """A Primary from psql's tab-separated answers to PRIMARY_QUERY and WAL_QUERY."""
    current, timeout, archived, failed, last_archived, last_failed = primary_rows[0]
    return Primary(
        current_wal=current,
        archive_timeout=float(timeout),
        segments={row[0]: float(row[1]) for row in wal_rows if len(row) == 2 and SEGMENT.match(row[0])},
        archived_count=int(archived),
        failed_count=int(failed),
        last_archived_time=float(last_archived) if last_archived else None,
        last_failed_time=float(last_failed) if last_failed else None,
    )


def find_primary(targets: list[str], user: str = "postgres", port: int = 5432) -> Primary | None:
    for target in targets:
        rows = psql(target, PRIMARY_QUERY, user, port)
        if rows:  # a standby answers no row; a member that does not answer, None
            return parse_primary(rows, psql(target, WAL_QUERY, user, port) or [])
    return None


def pgbackrest_info(stanza: str) -> list[dict[str, Any]] | None:
    try:
        result = subprocess.run(["pgbackrest", f"--stanza={stanza}", "--output=json", "info"], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return None  # reported as medisys_backup_info_success 0
    if result.returncode != 0:
        return None
    try:
        parsed = json.loads(result.stdout)
    except json.JSONDecodeError:
        return None
    return parsed if isinstance(parsed, list) else None


def filesystem(path: str) -> tuple[int, int]:
    stat = os.statvfs(path)
    return stat.f_blocks * stat.f_frsize, stat.f_bavail * stat.f_frsize


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stanza", default=os.environ.get("STANZA", "main"))
    parser.add_argument("--config", default="/etc/pgbackrest/pgbackrest.conf")
    parser.add_argument("--sockets", default="/var/run/postgresql/members/*",
                        help="glob of the members' socket directories, used when pgbackrest.conf lists no pgN-host")
    parser.add_argument("--user", default="postgres", help="the role that reads the primary's WAL position (pg_monitor)")
    parser.add_argument("--port", type=int, default=5432, help="the members' PostgreSQL port")
    parser.add_argument("--mounts", default="/var/lib/postgresql/members/* /var/lib/pgbackrest", help="space-separated globs for the filesystem metrics")
    parser.add_argument("--runs", default="/var/lib/medisys-backup", help="folder of the repo<N>.status run records")
    parser.add_argument("--output", required=True, help="file to write (atomically)")
    args = parser.parse_args(argv)

    config_paths = [args.config, *sorted(glob.glob(str(Path(args.config).parent / "conf.d" / "*.conf")))]
    texts = [Path(p).read_text() for p in config_paths if os.access(p, os.R_OK)]
    mounts = [m for pattern in args.mounts.split() for m in sorted(glob.glob(pattern))]
    text = render(
        stanza=args.stanza,
        info=pgbackrest_info(args.stanza),
        primary=find_primary(pg_hosts(texts) or sorted(glob.glob(args.sockets)), args.user, args.port),
        runs=read_runs(Path(args.runs)) if Path(args.runs).is_dir() else {},
        types=repo_types(texts),
        full_interval_hours=int(os.environ["BACKUP_FULL_INTERVAL_HOURS"]),
        diff_interval_hours=int(os.environ["BACKUP_DIFF_INTERVAL_HOURS"]),
        filesystems={m: filesystem(m) for m in mounts},
        now=time.time(),
    )
    output = Path(args.output)
    tmp = output.with_name(f".{output.name}.{os.getpid()}")
    tmp.write_text(text)
    tmp.chmod(0o644)
    tmp.replace(output)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
