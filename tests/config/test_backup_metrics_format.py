"""The backup agent's metrics, as medisys-backup-metrics wrote them inside medisys/postgres against
a real primary and two pgBackRest repositories (tests/unit/fixtures/pgbackrest), pass
`promtool check metrics`, and every series the backup alerts read is among them."""

from __future__ import annotations

import re

from tests.config.test_prometheus_rules import PROMETHEUS_IMAGE, REPO, alert_rules, assert_ok, needs_docker, run_tool

WRITTEN = REPO / "tests/unit/fixtures/pgbackrest/repo2-error.prom"


@needs_docker
def test_promtool_accepts_the_written_exposition():
    assert_ok(run_tool(PROMETHEUS_IMAGE, "promtool", "check", "metrics", stdin=WRITTEN.read_text()))


def test_every_backup_series_the_rules_read_is_written():
    written = set(re.findall(r"^([a-z_]+)\{", WRITTEN.read_text(), re.M))
    expressions = " ".join(rule["expr"] for rule in alert_rules())
    read = set(re.findall(r"\b((?:medisys_backup|medisys_wal)_[a-z_]+)\b", expressions))
    # The tool writes run records only for repositories it has run a backup to; the fixture has one.
    assert read and read <= written, sorted(read - written)
