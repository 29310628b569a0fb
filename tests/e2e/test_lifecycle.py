"""The engine end to end: a fresh stack is up (tests/live ran its checks on it), a second `up`
changes nothing, `refresh` finds no drift, and the state and outputs hold no secret in plain
text. Destroy and the check that nothing is left run in the live deployment fixture's teardown."""

from __future__ import annotations

import subprocess
import time

import pytest
import yaml

from tests.live.conftest import report_phase
from tests.live.probes import exec_in
from tests.support.engine import ROOT, STATE, toolchain_status
from tests.support.stack import LIVE_STACK

AVAILABLE, REASON = toolchain_status()
pytestmark = pytest.mark.skipif(not AVAILABLE, reason=REASON)


def test_second_up_reports_no_changes(deployment):
    started = time.monotonic()
    result = deployment.engine_stack.up(on_output=lambda _: None)
    report_phase("no-op up", time.monotonic() - started)
    changed = {op: n for op, n in result.summary.resource_changes.items() if op != "same"}
    assert changed == {}


def test_refresh_finds_no_drift(deployment):
    result = deployment.engine_stack.refresh(on_output=lambda _: None)
    changed = {op: n for op, n in result.summary.resource_changes.items() if op != "same"}
    assert changed == {}


def test_state_and_outputs_hold_no_secret_in_plain_text(deployment):
    # Secrets as the containers received them: generated passwords, the backup cipher, a TLS key.
    member = deployment.roles["postgres"][0]
    patroni = yaml.safe_load(exec_in(member, "cat", "/etc/patroni/20-secrets.yml"))["postgresql"]["authentication"]
    found = {
        "superuser password": patroni["superuser"]["password"],
        "replication password": patroni["replication"]["password"],
        "database TLS key": exec_in(member, "cat", "/etc/postgresql/tls/server.key").splitlines()[1],
        "app database password": exec_in(deployment.roles["app"][0], "cat", "/run/secrets/db_password").strip(),
    }
    assert all(len(value) >= 32 for value in found.values()), "a secret file was empty: the check would prove nothing"
    # The files the backend keeps for this stack (state, backups, history), as they are on disk:
    # the Automation API's export and outputs decrypt secrets (--show-secrets), the files must not.
    files = [p for p in (STATE / "backend" / ".pulumi").rglob("*") if p.is_file() and LIVE_STACK in p.name]
    stored = "\n".join(p.read_text(errors="replace") for p in files)
    assert any(p.parent.name == "medisys-platform" and p.parent.parent.name == "stacks" for p in files), files
    assert "ciphertext" in stored, "the state holds no encrypted secret at all"
    outputs = subprocess.run(["pulumi", "stack", "output", "--json", "--stack", LIVE_STACK], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout
    leaked = [name for name, value in found.items() if value in stored or value in outputs]
    assert leaked == []
