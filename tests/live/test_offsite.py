"""Offsite backups, live: repo2 over SFTP holds backups and WAL; the database restores from it
alone (no local repository, no database volume) to the newest state and to a point in time; a
row's WAL reaches it within the archive timeout (RPO); a changed host key or an unreachable
server fails the backup loudly, and an unreachable one holds back no WAL of the local repository.

Measurements (restore time, RPO window) go to reports/live-phases.json.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from tests.live.cluster import wait_whole
from tests.live.conftest import report_phase
from tests.live.probes import docker, exec_in, psql
from tests.live.test_data import write_note

ROOT = Path(__file__).resolve().parents[2]
RTO_SECONDS = 4 * 3600
HOST_KEY = "/etc/offsite-sftp/ssh_host_ed25519_key"


def offsite_info(agent: str) -> dict:
    return json.loads(exec_in(agent, "pgbackrest", "--stanza=main", "--repo=2", "--output=json", "info", timeout=180))[0]


def run_script(name: str, *args: str, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(ROOT / "scripts" / name), *args], capture_output=True, text=True, timeout=timeout)


def restore_offsite(deployment, *args: str) -> tuple[str, int]:
    """The restored copy's answer to the query and the restore time the runbook measured."""
    result = run_script("restore-offsite", deployment.prefix, *args)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    seconds = int(re.search(r"recovered in (\d+) s", result.stderr).group(1))
    return result.stdout.strip().splitlines()[-1], seconds


def wait_healthy(container: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while docker("inspect", "--format", "{{.State.Health.Status}}", container).strip() != "healthy":
        assert time.monotonic() < deadline, f"{container} is not healthy again"
        time.sleep(1)


@pytest.fixture(scope="module")
def offsite(deployment):
    """The agent once its first backup is in the offsite repository (it backs up repo1, then repo2)."""
    agent = deployment.one("postgres-backup")
    deadline = time.monotonic() + 600
    while not any(b["type"] == "full" for b in offsite_info(agent).get("backup", [])):
        assert time.monotonic() < deadline, exec_in(agent, "pgbackrest", "--stanza=main", "--repo=2", "info", check=False)
        time.sleep(5)
    return agent


def test_offsite_repository_is_encrypted_and_holds_a_full_backup(deployment, offsite):
    info = offsite_info(offsite)
    assert info["status"]["code"] == 0, info["status"]
    assert info["cipher"] == "aes-256-cbc"
    assert {b["database"]["repo-key"] for b in info["backup"]} == {2}
    # The SFTP server holds only ciphertext: even the repository's index is OpenSSL-encrypted.
    sftp = deployment.one("offsite-sftp")
    header = exec_in(sftp, "sh", "-c", "head -c 8 /srv/pgbackrest/backup/main/backup.info")
    assert header == "Salted__", "backup.info on the offsite server is not encrypted"


def test_row_reaches_offsite_within_the_archive_timeout_and_restores_from_offsite_alone(deployment, offsite):
    primary, _ = wait_whole(deployment)
    archive_timeout = int(psql(primary, "SELECT setting FROM pg_settings WHERE name = 'archive_timeout'"))
    text = f"offsite-rpo-{uuid.uuid4()}"
    note = write_note(deployment, text)
    written = time.monotonic()
    # No checkpoint, no forced switch: the segment holding the row is archived when archive_timeout ends it.
    segment = psql(primary, "SELECT pg_walfile_name(pg_current_wal_lsn())")
    while True:
        archived = max((a.get("max") or "" for a in offsite_info(offsite).get("archive", [])), default="")
        if archived[8:] >= segment[8:]:
            break
        assert time.monotonic() - written < archive_timeout + 60, f"{segment} not offsite after {archive_timeout + 60} s (max {archived})"
        time.sleep(1)
    window = time.monotonic() - written
    report_phase("offsite RPO window (s)", window)
    assert window <= archive_timeout + 30, f"the row's WAL took {window:.0f} s to reach the offsite repository"

    found, seconds = restore_offsite(deployment, "--sql", f"SELECT body FROM app.notes WHERE id = {note}")
    report_phase("offsite restore, latest (s)", float(seconds))
    assert found == text
    assert seconds < RTO_SECONDS


def test_point_in_time_restore_from_offsite_stops_before_a_later_row(deployment, offsite):
    before = write_note(deployment, f"offsite-before-{uuid.uuid4()}")
    primary, _ = wait_whole(deployment)
    target = psql(primary, "SELECT to_char(now(), 'YYYY-MM-DD HH24:MI:SS.MSOF')")
    time.sleep(1.5)
    after = write_note(deployment, f"offsite-after-{uuid.uuid4()}")
    # `check` switches the WAL segment and waits until every repository has it.
    exec_in(offsite, "pgbackrest", "--stanza=main", "check", timeout=180)
    found, seconds = restore_offsite(
        deployment, "--target-time", target,
        "--sql", f"SELECT string_agg(id::text, ',' ORDER BY id) FROM app.notes WHERE id IN ({before}, {after})",
    )
    report_phase("offsite restore, point in time (s)", float(seconds))
    assert found == str(before)


def repo2_status(agent: str) -> str:
    return exec_in(agent, "cat", "/var/lib/medisys-backup/repo2.status").strip()


def wait_archiving_to_offsite(agent: str, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while True:
        # `check` (every repository) archives a new WAL segment and waits until each repository has it.
        result = subprocess.run(["docker", "exec", agent, "pgbackrest", "--stanza=main", "--archive-timeout=20", "check"],
                                capture_output=True, text=True, timeout=120)
        if result.returncode == 0:
            return
        assert time.monotonic() < deadline, f"WAL archiving to repo2 did not recover: {result.stdout[-800:]}{result.stderr[-800:]}"
        time.sleep(5)


def test_a_changed_offsite_host_key_fails_the_backup_loudly(deployment, offsite):
    sftp = deployment.one("offsite-sftp")
    with tempfile.TemporaryDirectory() as tmp:
        original, impostor = Path(tmp) / "original", Path(tmp) / "impostor"
        docker("cp", f"{sftp}:{HOST_KEY}", str(original))
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(impostor)], check=True)
        impostor.chmod(0o644)
        try:
            docker("cp", str(impostor), f"{sftp}:{HOST_KEY}")
            docker("restart", sftp)
            wait_healthy(sftp)
            result = run_script("backup-now", deployment.prefix, "--repo", "2", "--type", "incr")
            assert result.returncode != 0
            output = result.stdout + result.stderr
            assert "do not match" in output and "repo2 (offsite)" in result.stderr, output[-2000:]
            assert repo2_status(offsite).startswith("failed ")
        finally:
            docker("cp", str(original), f"{sftp}:{HOST_KEY}")
            docker("restart", sftp)
            wait_healthy(sftp)
    # While the key was wrong, archive-push to repo2 failed and PostgreSQL backed off; once WAL
    # reaches repo2 again, the next backup succeeds.
    wait_archiving_to_offsite(offsite)
    result = run_script("backup-now", deployment.prefix, "--repo", "2", "--type", "incr")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert repo2_status(offsite).split()[0] == "ok"  # the loop writes "ok <time> 0 <type>", backup-now "ok"


def local_archive_max(agent: str) -> str:
    info = json.loads(exec_in(agent, "pgbackrest", "--stanza=main", "--repo=1", "--output=json", "info", timeout=120))[0]
    return max((a.get("max") or "" for a in info.get("archive", [])), default="")


def archiver_failures(primary: str) -> int:
    return int(psql(primary, "SELECT failed_count FROM pg_stat_archiver"))


def test_an_unreachable_offsite_server_fails_the_backup_loudly_and_holds_back_no_local_wal(deployment, offsite):
    sftp = deployment.one("offsite-sftp")
    primary, _ = wait_whole(deployment)
    failures_before = archiver_failures(primary)
    docker("stop", sftp)
    try:
        result = run_script("backup-now", deployment.prefix, "--repo", "2", "--type", "incr")
        assert result.returncode != 0
        output = result.stdout + result.stderr
        assert "unable to connect" in output and "repo2 (offsite)" in result.stderr, output[-2000:]
        assert repo2_status(offsite).startswith("failed ")
        # The local repository keeps receiving every WAL segment while the offsite one is down
        # (archive-push is asynchronous); synchronously it would stop one segment past repo2.
        completed = []
        for _ in range(3):
            write_note(deployment, f"offsite-down-{uuid.uuid4()}")
            completed.append(psql(primary, "SELECT pg_walfile_name(pg_switch_wal())"))
        switched = time.monotonic()
        while (local := local_archive_max(offsite))[8:] < completed[-1][8:]:
            # Two asynchronous runs at most (one may have started before the switches), each
            # waiting io-timeout (15 s) for repo2 before pushing to repo1; measured 34.8 s (with
            # pgBackRest's default io-timeout of 60 s: 119.2 s; synchronously: never).
            assert time.monotonic() - switched < 90, (
                f"with the offsite server down, repo1 holds WAL up to {local} only; {completed} were completed "
                f"{time.monotonic() - switched:.0f} s ago")
            time.sleep(2)
        report_phase("local WAL archive with the offsite server down: 3 segments reached repo1 (s)", time.monotonic() - switched)
        # PostgreSQL still sees the failure (WalArchiveFailing) and keeps the WAL repo2 lacks.
        assert archiver_failures(primary) > failures_before
    finally:
        docker("start", sftp)
        wait_healthy(sftp)
    wait_archiving_to_offsite(offsite)
