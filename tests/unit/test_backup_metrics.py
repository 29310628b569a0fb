"""The backup agent's metrics tool (images/postgres/medisys_backup_metrics.py) on real pgBackRest
2.55 and PostgreSQL 17 answers.

The fixtures in fixtures/pgbackrest/ were captured by fixtures/pgbackrest/capture.sh in a
throwaway container of medisys/postgres: two encrypted posix repositories, full backups to both,
a differential to repository 1; then repository 2 made unreadable (archive-push fails, info
reports status 99, a backup to it exits 41). repo2-error.prom is the tool's own output there.
sftp-ok.json and sftp-unreachable.json come from a live stack of this branch merged with the
offsite branch (repo2 over SFTP), before and after `docker stop` of its SFTP server.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parent / "fixtures" / "pgbackrest"


def load_tool():
    spec = importlib.util.spec_from_file_location("medisys_backup_metrics", REPO / "images/postgres/medisys_backup_metrics.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


tool = load_tool()

TWO_REPOS = "[global]\nrepo1-path=/var/lib/pgbackrest\nrepo1-cipher-type=aes-256-cbc\nrepo2-type=sftp\nrepo2-path=/offsite\n"


def info(name: str) -> list[dict]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def tsv(name: str) -> list[list[str]]:
    return [line.split("\t") for line in (FIXTURES / name).read_text().splitlines() if line]


def primary(state: str):
    return tool.parse_primary(tsv(f"{state}-primary.tsv"), tsv(f"{state}-wal.tsv"))


def render(state: str, *, info_state: str | None = None, runs=None, now: float | None = None, primary_state: str | None = None, **overrides) -> str:
    p = primary(primary_state or state)
    arguments = {
        "stanza": "main",
        "info": info(info_state or state),
        "primary": p,
        "runs": runs or {},
        "types": tool.repo_types([TWO_REPOS]),
        "full_interval_hours": 24,
        "diff_interval_hours": 4,
        "filesystems": {"/var/lib/pgbackrest": (1000, 250)},
        "now": now if now is not None else (p.last_archived_time or 0) + 30,
    }
    arguments.update(overrides)
    return tool.render(**arguments)


def samples(text: str) -> dict[str, float]:
    """`name{labels}` -> value, every sample of the exposition."""
    found = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, value = line.rsplit(" ", 1)
            found[series] = float(value)
    return found


def value(text: str, name: str, **labels: str) -> float | None:
    for series, number in samples(text).items():
        match = re.fullmatch(r"([a-z_]+)\{(.*)\}", series)
        if match and match.group(1) == name:
            have = dict(re.findall(r'([a-z_]+)="([^"]*)"', match.group(2)))
            if all(have.get(k) == v for k, v in labels.items()):
                return number
    return None


# --- pgBackRest's info, per repository -----------------------------------------------------------


def test_every_configured_repository_reports_its_status():
    text = render("two-repos-ok")
    assert value(text, "medisys_backup_repo_status", repo="1", repo_type="posix") == 0
    assert value(text, "medisys_backup_repo_status", repo="2", repo_type="sftp") == 0


def test_an_unreachable_repository_reports_pgbackrests_error_code():
    text = render("repo2-error")
    assert value(text, "medisys_backup_repo_status", repo="1") == 0
    assert value(text, "medisys_backup_repo_status", repo="2") == 99


def test_a_repository_without_backups_reports_status_2_and_no_timestamps():
    text = render("two-repos-ok", info_state="no-backups")
    assert value(text, "medisys_backup_repo_status", repo="1") == 2
    assert value(text, "medisys_backup_repo_status", repo="2") == 2
    assert value(text, "medisys_backup_last_success_timestamp_seconds") is None


def test_newest_backup_per_repository_and_type_comes_from_timestamp_stop():
    raw = info("two-repos-ok")[0]["backup"]
    text = render("two-repos-ok")
    for repo, kind in ((1, "full"), (2, "full"), (1, "diff")):
        expected = max(b["timestamp"]["stop"] for b in raw if b["database"]["repo-key"] == repo and b["type"] == kind)
        assert value(text, "medisys_backup_last_success_timestamp_seconds", repo=str(repo), type=kind) == expected
    # Repository 2 got no differential: no series, rather than repository 1's.
    assert value(text, "medisys_backup_last_success_timestamp_seconds", repo="2", type="diff") is None


def test_a_failed_info_is_reported_and_nothing_per_repository_is_invented():
    text = render("two-repos-ok", info=None)
    assert value(text, "medisys_backup_info_success") == 0
    assert value(text, "medisys_backup_repo_status") is None
    assert value(text, "medisys_wal_archive_lag_seconds") is None
    assert value(text, "medisys_backup_full_interval_seconds") == 86400


def test_the_schedule_bounds_come_from_the_configured_intervals():
    text = render("two-repos-ok", full_interval_hours=24, diff_interval_hours=6)
    assert value(text, "medisys_backup_full_interval_seconds") == 24 * 3600
    assert value(text, "medisys_backup_interval_seconds") == 6 * 3600
    # Differentials less often than fulls: a backup is still due every full interval.
    assert value(render("two-repos-ok", full_interval_hours=12, diff_interval_hours=24), "medisys_backup_interval_seconds") == 12 * 3600


def test_a_real_sftp_repository_reports_ok_then_99_when_its_server_is_stopped():
    p = primary("two-repos-ok")
    ok = render("two-repos-ok", info_state="sftp-ok", primary=p)
    assert value(ok, "medisys_backup_repo_status", repo="2", repo_type="sftp") == 0
    assert value(ok, "medisys_backup_last_success_timestamp_seconds", repo="2", repo_type="sftp", type="full") is not None
    down = render("two-repos-ok", info_state="sftp-unreachable", primary=p)
    assert value(down, "medisys_backup_repo_status", repo="1", repo_type="posix") == 0
    assert value(down, "medisys_backup_repo_status", repo="2", repo_type="sftp") == 99
    # pgBackRest lists no backup and no archive for a repository it cannot reach: no stale series.
    assert value(down, "medisys_backup_last_success_timestamp_seconds", repo="2") is None
    assert value(down, "medisys_wal_archive_lag_seconds", repo="2") is None
    assert "No route to host" not in down  # the message stays in `pgbackrest info`


# --- the agent's runs -----------------------------------------------------------------------------


def test_last_run_per_repository_from_the_loops_records(tmp_path):
    (tmp_path / "repo1.status").write_text("ok 1796304450 0 full\n")
    (tmp_path / "repo2.status").write_text((FIXTURES / "repo2-error-run").read_text())  # pgBackRest's real exit 41
    (tmp_path / "repo3.status.tmp").write_text("ok 1 0 diff")  # being written: ignored
    runs = tool.read_runs(tmp_path)
    assert set(runs) == {1, 2}
    text = render("repo2-error", runs=runs)
    assert value(text, "medisys_backup_last_run_success", repo="1") == 1
    assert value(text, "medisys_backup_last_run_success", repo="2") == 0
    assert value(text, "medisys_backup_last_run_exit_code", repo="2") == 41
    assert value(text, "medisys_backup_last_run_timestamp_seconds", repo="1") == 1796304450


def test_short_records_as_scripts_backup_now_writes_them_are_read():
    assert tool.parse_run("ok\n") == tool.Run(success=True, finished=None, exit_code=0, type=None)
    assert tool.parse_run("failed 1796304461") == tool.Run(success=False, finished=1796304461.0, exit_code=None, type=None)
    text = render("repo2-error", runs={2: tool.parse_run("failed 1796304461")})
    assert value(text, "medisys_backup_last_run_success", repo="2") == 0
    assert value(text, "medisys_backup_last_run_exit_code", repo="2") is None  # unknown, not invented


# --- WAL archiving per repository -----------------------------------------------------------------


def test_primary_answers_parse_into_completed_segments_only():
    p = primary("repo2-error")
    assert p.current_wal == "000000010000000000000009"
    assert p.archive_timeout == 60
    assert "000000010000000000000007.00000028.backup" not in p.segments
    assert p.failed_count == 3 and p.last_failed_time > p.last_archived_time


def test_archive_lag_is_zero_when_the_repository_has_every_completed_segment():
    text = render("two-repos-ok")
    for repo in ("1", "2"):
        assert value(text, "medisys_wal_archive_lag_seconds", repo=repo) == 0
        assert value(text, "medisys_wal_archive_missing_segments", repo=repo) == 0


def test_archive_lag_is_the_age_of_the_oldest_segment_the_repository_lacks():
    # The repositories as they were (newest segment ...07) against the primary after two switches:
    # ...08 completed and waits, ...09 is current (never counted).
    p = primary("repo2-error")
    completed_08 = p.segments["000000010000000000000008"]
    text = render("two-repos-ok", primary_state="repo2-error", now=completed_08 + 300)
    assert value(text, "medisys_wal_archive_lag_seconds", repo="2") == 300
    assert value(text, "medisys_wal_archive_missing_segments", repo="2") == 1


def test_an_unreachable_repository_has_no_lag_series_and_the_archiver_reports_failing():
    text = render("repo2-error")
    assert value(text, "medisys_wal_archive_lag_seconds", repo="1") == 0  # pgBackRest pushed ...08 to repository 1
    assert value(text, "medisys_wal_archive_lag_seconds", repo="2") is None
    last_failed = value(text, "medisys_wal_archiver_last_failed_timestamp_seconds")
    last_archived = value(text, "medisys_wal_archiver_last_archived_timestamp_seconds")
    assert last_failed is not None and last_archived is not None and last_failed > last_archived
    assert value(text, "medisys_wal_archiver_failed_total") == 3


def test_a_quiet_database_does_not_lag():
    # Hours later with no new WAL: the repository still has every completed segment.
    p = primary("two-repos-ok")
    text = render("two-repos-ok", now=(p.last_archived_time or 0) + 6 * 3600)
    assert value(text, "medisys_wal_archive_lag_seconds", repo="1") == 0


def test_without_a_primary_only_the_primary_flag_says_so():
    text = render("two-repos-ok", primary=None)
    assert value(text, "medisys_backup_primary_found") == 0
    assert value(text, "medisys_wal_archive_lag_seconds") is None
    assert value(text, "medisys_backup_repo_status", repo="2") == 0


def test_a_timeline_switch_counts_the_new_timelines_segments_as_missing():
    p = tool.Primary(
        current_wal="000000020000000000000009",
        archive_timeout=60,
        segments={"000000010000000000000008": 100.0, "000000020000000000000008": 200.0},
    )
    assert tool.archive_lag("000000010000000000000008", p, now=260.0) == (60.0, 1)


# --- configuration and format ---------------------------------------------------------------------


def test_repository_types_come_from_pgbackrest_conf_and_default_to_posix():
    cipher_conf = "[global]\nrepo1-cipher-pass=secret\nrepo2-cipher-pass=secret\n"
    assert tool.repo_types([TWO_REPOS, cipher_conf]) == {1: "posix", 2: "sftp"}
    assert tool.repo_types(["[global]\nrepo1-path=/r\n\n[main]\npg1-path=/d\nrepo3-path=/not-global\n"]) == {1: "posix"}
    # A line it does not understand is skipped, as pgBackRest's own parser would refuse it loudly.
    assert tool.repo_types(["# comment\n[global]\nrepo2-type = s3\nnot a setting\n[global:archive-push]\nrepo1-path=/r\n"]) == {2: "s3", 1: "posix"}


def test_the_exposition_keeps_each_family_together_with_help_and_type():
    text = render("repo2-error", runs={2: tool.Run(success=False, finished=1.0, exit_code=41, type="diff")})
    seen: list[str] = []
    for line in text.splitlines():
        name = line.split()[2] if line.startswith("# ") else re.match(r"[a-z_]+", line).group(0)
        if not seen or seen[-1] != name:
            assert name not in seen, f"{name} is split"
            seen.append(name)
    assert text.count("# TYPE medisys_backup_repo_status gauge") == 1
    assert "cipher" not in text and "secret" not in text


def test_the_tools_own_output_in_the_real_container_matches_a_render_of_the_same_answers():
    # repo2-error.prom was written by the tool inside medisys/postgres against the live primary.
    written = samples((FIXTURES / "repo2-error.prom").read_text())
    assert written['medisys_backup_repo_status{stanza="main",repo="2",repo_type="posix"}'] == 99
    assert written['medisys_backup_last_run_exit_code{stanza="main",repo="2",repo_type="posix"}'] == 41
    assert written['medisys_wal_archive_lag_seconds{stanza="main",repo="1",repo_type="posix"}'] == 0
    assert written['medisys_backup_primary_found{stanza="main"}'] == 1


@pytest.mark.parametrize("bad", ["", "0 full 1796304450", "ok yesterday", "failed 1796304461 exit41"])
def test_an_unparseable_run_record_is_skipped(tmp_path, bad):
    (tmp_path / "repo1.status").write_text(bad)
    assert tool.read_runs(tmp_path) == {}


def test_a_hanging_pgbackrest_or_member_counts_as_no_answer(monkeypatch):
    def hang(*args, **kwargs):
        raise tool.subprocess.TimeoutExpired(args[0], 1)

    monkeypatch.setattr(tool.subprocess, "run", hang)
    assert tool.pgbackrest_info("main") is None
    assert tool.find_primary(["/var/run/postgresql/members/1"]) is None


# --- the members, as the repository host reaches them -----------------------------------------------


def test_members_are_the_pg_hosts_of_the_repository_hosts_configuration_in_order():
    from components.backups import OffsiteEndpoint, PgServer, render_repository_conf
    from config import Backups

    members = [PgServer(f"pg-{i}", f"10.0.2.{9 + i}", f"/var/lib/postgresql/members/{i}/pgdata") for i in (1, 2, 3)]
    conf = render_repository_conf(Backups(), "10.0.2.40", members, OffsiteEndpoint("10.0.4.50", 2222, "pgbackrest", "/srv"))
    assert tool.pg_hosts([conf, "[global]\nrepo1-cipher-pass=x\n"]) == ["10.0.2.10", "10.0.2.11", "10.0.2.12"]
    # A configuration without hosts (members' sockets mounted, before the repository host): none.
    assert tool.pg_hosts([TWO_REPOS + "[main]\npg1-path=/d\npg1-socket-path=/var/run/postgresql/members/1\n"]) == []


def test_the_primary_is_asked_over_the_network_as_the_given_role(monkeypatch):
    calls = []

    def answer(argv, **kwargs):
        calls.append(argv)
        host = argv[argv.index("-h") + 1]
        rows = (FIXTURES / "two-repos-ok-primary.tsv").read_text() if host == "10.0.2.11" and "pg_stat_archiver" in argv[-1] else ""
        if "pg_ls_waldir" in argv[-1]:
            rows = (FIXTURES / "two-repos-ok-wal.tsv").read_text()
        return tool.subprocess.CompletedProcess(argv, 0, rows, "")

    monkeypatch.setattr(tool.subprocess, "run", answer)
    found = tool.find_primary(["10.0.2.10", "10.0.2.11"], user="medisys_monitoring", port=5432)
    assert found == primary("two-repos-ok")
    # The standby answered no row; the primary was asked for its WAL; never as postgres.
    assert [c[c.index("-h") + 1] for c in calls] == ["10.0.2.10", "10.0.2.11", "10.0.2.11"]
    assert {c[c.index("-U") + 1] for c in calls} == {"medisys_monitoring"} and {c[c.index("-p") + 1] for c in calls} == {"5432"}
