"""scripts/e2e-report: phase timings plus pytest's JUnit XML in, e2e-report.json and a table out."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.ci.conftest import ROOT

SCRIPT = ROOT / "scripts" / "e2e-report"

PASSING = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" errors="0" failures="0" skipped="1" tests="3" time="12.5">
<testcase classname="tests.live.test_edge" name="test_https_serves_the_app" time="1.234" />
<testcase classname="tests.live.test_data" name="test_replica_refuses_writes" time="0.5" />
<testcase classname="tests.e2e.test_engine" name="test_no_op_up" time="0.001">
  <skipped type="pytest.skip" message="the Pulumi toolchain is missing: see .state/toolchain.status">skip detail</skipped>
</testcase>
</testsuite></testsuites>
"""

ONE_FAILED = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" errors="0" failures="1" skipped="0" tests="2" time="30">
<testcase classname="tests.live.test_edge" name="test_https_serves_the_app" time="2" />
<testcase classname="tests.live.test_scaling" name="test_no_failed_request_while_a_server_stops" time="25.75">
  <failure message="AssertionError: 3 of 400 requests failed&#10;assert 3 == 0">traceback here</failure>
</testcase>
</testsuite></testsuites>
"""

PHASES = {"deployer": "replay", "first up (replay)": 88.6, "destroy (replay)": 3.8}


def run(directory: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MEDISYS_REPORT_DIR": str(directory)}
    return subprocess.run([str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60, check=False)


def given(tmp_path: Path, junit: str, phases: dict[str, Any] | None = PHASES) -> Path:
    (tmp_path / "live-junit.xml").write_text(junit)
    if phases is not None:
        (tmp_path / "live-phases.json").write_text(json.dumps(phases))
    return tmp_path


def written(directory: Path) -> dict[str, Any]:
    return json.loads((directory / "e2e-report.json").read_text())


def test_script_is_executable() -> None:
    assert os.access(SCRIPT, os.X_OK)


def test_all_passed_writes_the_report_and_exits_zero(tmp_path: Path) -> None:
    done = run(given(tmp_path, PASSING))
    assert done.returncode == 0, done.stderr
    report = written(tmp_path)
    assert report["deployer"] == "replay"
    assert report["phases"] == {"first up (replay)": 88.6, "destroy (replay)": 3.8}
    assert report["summary"] == {"passed": 2, "failed": 0, "skipped": 1}
    assert report["checks"] == [
        {"name": "live.test_edge::test_https_serves_the_app", "outcome": "passed", "seconds": 1.23, "message": ""},
        {"name": "live.test_data::test_replica_refuses_writes", "outcome": "passed", "seconds": 0.5, "message": ""},
        {
            "name": "e2e.test_engine::test_no_op_up",
            "outcome": "skipped",
            "seconds": 0.0,
            "message": "the Pulumi toolchain is missing: see .state/toolchain.status",
        },
    ]


def test_one_failed_check_fails_the_report(tmp_path: Path) -> None:
    done = run(given(tmp_path, ONE_FAILED))
    assert done.returncode == 1
    report = written(tmp_path)
    assert report["summary"] == {"passed": 1, "failed": 1, "skipped": 0}
    failed = report["checks"][1]
    assert failed["outcome"] == "failed" and failed["seconds"] == 25.75
    assert failed["message"] == "AssertionError: 3 of 400 requests failed"


def test_an_error_counts_as_failed(tmp_path: Path) -> None:
    junit = ONE_FAILED.replace("<failure ", "<error ").replace("</failure>", "</error>")
    assert run(given(tmp_path, junit)).returncode == 1
    assert written(tmp_path)["summary"]["failed"] == 1


def test_table_lists_phases_then_checks_then_totals(tmp_path: Path) -> None:
    out = run(given(tmp_path, ONE_FAILED)).stdout.splitlines()
    assert out[0] == "End-to-end report (deployer: replay)"
    phase_rows = [line for line in out if "(replay)" in line and line != out[0]]
    assert [row.split("  ")[0] for row in phase_rows] == ["first up (replay)", "destroy (replay)"]
    assert phase_rows[0].endswith("88.6")
    check_rows = [line for line in out if "::" in line]
    assert check_rows[1].split() == ["live.test_scaling::test_no_failed_request_while_a_server_stops", "failed", "25.75"]
    # Columns line up: the outcome starts at the same place in every check row.
    assert len({re.search(r" (passed|failed|skipped) ", row).start() for row in check_rows}) == 1  # type: ignore[union-attr]
    assert out.index(phase_rows[-1]) < out.index(check_rows[0])
    assert any(line.startswith("checks: 2 (1 passed, 1 failed, 0 skipped)") for line in out)


def test_deployer_is_unknown_without_a_name_or_phases_file(tmp_path: Path) -> None:
    assert run(given(tmp_path, PASSING, phases={"first up (replay)": 1.0})).returncode == 0
    assert written(tmp_path)["deployer"] == "unknown"
    (tmp_path / "live-phases.json").unlink()
    assert run(tmp_path).returncode == 0
    assert written(tmp_path)["deployer"] == "unknown" and written(tmp_path)["phases"] == {}


def test_missing_junit_is_an_input_error(tmp_path: Path) -> None:
    done = run(tmp_path)
    assert done.returncode == 2
    assert "live-junit.xml does not exist" in done.stderr
    assert not (tmp_path / "e2e-report.json").exists()


def test_reads_the_junit_xml_pytest_writes(tmp_path: Path) -> None:
    tests = tmp_path / "tests" / "live" / "test_sample.py"
    tests.parent.mkdir(parents=True)
    tests.write_text(
        "import pytest\n"
        "def test_ok():\n    pass\n"
        "def test_broken():\n    assert 1 == 2, 'one is not two'\n"
        "@pytest.mark.skip(reason='not here')\n"
        "def test_later():\n    pass\n"
    )
    reports = tmp_path / "reports"
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tests), f"--junitxml={reports / 'live-junit.xml'}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run(reports).returncode == 1
    checks = {c["name"].split("::")[-1]: c for c in written(reports)["checks"]}
    assert {name: c["outcome"] for name, c in checks.items()} == {"test_ok": "passed", "test_broken": "failed", "test_later": "skipped"}
    assert "one is not two" in checks["test_broken"]["message"]
    assert checks["test_later"]["message"] == "not here"


def test_only_live_and_engine_checks_are_reported(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "live-phases.json").write_text('{"deployer": "replay", "first up": 80.0}')
    (reports / "live-junit.xml").write_text(
        '<testsuites><testsuite name="pytest">'
        '<testcase classname="tests.unit.test_config" name="test_unit" time="0.1" />'
        '<testcase classname="tests.live.test_edge" name="test_live" time="1.0" />'
        "</testsuite></testsuites>"
    )
    assert run(reports).returncode == 0
    assert [c["name"] for c in written(reports)["checks"]] == ["live.test_edge::test_live"]
