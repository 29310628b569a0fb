"""The code reads as the style guide asks: ruff clean everywhere, mypy clean on the typed core."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run(tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / tool), *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_ruff_finds_nothing():
    result = run("ruff", "check", "config.py", "topology.py", "__main__.py", "components", "policies", "tests", "app", "toolchain", "scripts/e2e-report", "scripts/compliance-report", "images/postgres/medisys_backup_metrics.py")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_is_clean_on_components_config_policies_and_toolchain():
    result = run("mypy", "--ignore-missing-imports", "components", "config.py", "topology.py", "policies/medisys_policies", "toolchain", "images/postgres/medisys_backup_metrics.py")
    assert result.returncode == 0, result.stdout + result.stderr
