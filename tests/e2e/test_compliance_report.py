"""`make compliance` through the real engine: scripts/compliance-report previews prod (its stack
file, prod's policy config, this engine standing in for prod's Docker host) and writes the JSON
and Markdown report; a violating variant of prod shows the violated policy failed for exactly
the violating resources."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.engine import ROOT, toolchain_status

AVAILABLE, REASON = toolchain_status()
pytestmark = pytest.mark.skipif(not AVAILABLE, reason=REASON)


def compliance_report(tmp_path: Path, *extra: str) -> tuple[dict, str, str]:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "compliance-report"), "--stack", "prod", "--out-dir", str(tmp_path / "reports"),
         "--work-dir", str(tmp_path / "work"), *extra],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((tmp_path / "reports" / "compliance-prod.json").read_text())
    return report, (tmp_path / "reports" / "compliance-prod.md").read_text(), done.stdout


def test_make_compliance_writes_the_prod_report_from_a_real_preview(tmp_path: Path) -> None:
    report, md, stdout = compliance_report(tmp_path)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    assert report["commit"].startswith(head)
    version = next(line.split(":", 1)[1].strip() for line in (ROOT / "policies" / "PulumiPolicy.yaml").read_text().splitlines()
                   if line.startswith("version:"))
    assert report["policyPack"] == {"name": "medisys-platform-policies", "version": version}
    assert report["preview"]["succeeded"] and report["preview"]["resources"] > 100
    assert report["preview"]["policyConfig"] == "policies/config/prod.json"
    assert {row["status"] for row in report["summary"]} == {"passed"}
    assert all(sum(row["resources"].values()) > 0 for row in report["summary"])
    assert not report["unmappedPolicies"]
    assert "| HIPAA 164.312(e)(1) | Transmission security | **passed** |" in md and md.count("\n## ") == len(report["summary"])
    assert "| control |" in stdout
    # Only URNs, policy names and the policies' messages: no property value (the throwaway edge
    # key was secret config of this preview).
    text = (tmp_path / "reports" / "compliance-prod.json").read_text() + md
    assert "PRIVATE KEY" not in text and "BEGIN CERTIFICATE" not in text and '"inputs"' not in text


def test_report_of_a_violating_prod_variant_shows_the_policy_failed_for_that_resource(tmp_path: Path) -> None:
    report, md, _ = compliance_report(tmp_path, "--program", str(ROOT / "tests" / "e2e" / "unsafe_program"),
                                      "--config", "test:variant=privileged-container")
    assert not report["preview"]["succeeded"]  # the mandatory violation fails the preview...
    control = next(c for c in report["controls"] if c["control"] == "CIS Docker v1.6.0 5.5")
    (entry,) = control["evidence"]
    failed = {r["name"]: r for r in entry["resources"] if r["status"] == "failed"}
    assert sorted(failed) == ["medisys-prod-app-1", "medisys-prod-app-2", "medisys-prod-app-3"]
    assert "runs privileged" in failed["medisys-prod-app-1"]["messages"][0]
    assert entry["counts"]["passed"] > 20 and entry["counts"]["not judged"] == 0  # ...yet every resource was judged
    assert control["status"] == "failed" and "failed: `medisys-prod-app-1`" in md
