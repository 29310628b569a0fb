"""Changes without downtime, through `pulumi up` under load: a release (migrations, then one app
server at a time), a failed rollout and its rollback, a failing migration, an HAProxy config
change and a certificate re-issue. Every failed request and every lost acknowledged write counts.

The figures (rollout duration, failed requests, latency during the rollout against steady state)
go to reports/rollout.json for the README and the issue notes.
"""

from __future__ import annotations

import hashlib
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from components.load_balancer import APP_BACKEND, SERVER_STATE_FILE
from tests.live.cluster import wait_whole
from tests.live.conftest import ROOT, engine_up
from tests.live.probes import docker, http, psql
from tests.support.load import LoadGenerator, record_figures
from tests.support.stack import live_raw_config

RELEASE = (ROOT / "images" / "RELEASE").read_text().strip()
BASE_IMAGE = f"medisys/app:{RELEASE}"
NEXT_IMAGE = f"medisys/app:{RELEASE}-next"
BROKEN_IMAGE = f"medisys/app:{RELEASE}-broken"
BAD_MIGRATION_IMAGE = f"medisys/app:{RELEASE}-bad-migration"
STEADY_SECONDS = 8

pytestmark = pytest.mark.usefixtures("test_images")


def build_image(tag: str, dockerfile: str, files: dict[str, str]) -> None:
    with tempfile.TemporaryDirectory() as context:
        for name, text in {"Dockerfile": dockerfile, **files}.items():
            Path(context, name).write_text(text)
        result = subprocess.run(["docker", "build", "-q", "-t", tag, context], capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def test_images(deployment):
    """The next release (one more migration), an image whose /health never answers, and one whose
    migration fails; the stack goes back to the session's image afterwards."""
    migrations = "/opt/medisys/app/migrations/"
    build_image(NEXT_IMAGE, f"FROM {BASE_IMAGE}\nCOPY 0003_notes_created_at_index.sql {migrations}\n", {
        "0003_notes_created_at_index.sql": "CREATE INDEX IF NOT EXISTS notes_created_at ON app.notes (created_at);\n",
    })
    # The server process is replaced by one that never listens: /health fails, like a bad build.
    build_image(BROKEN_IMAGE, f'FROM {NEXT_IMAGE}\nCMD ["sleep", "infinity"]\n', {})
    build_image(BAD_MIGRATION_IMAGE, f"FROM {NEXT_IMAGE}\nCOPY 0004_broken.sql {migrations}\n", {
        # The first statement succeeds and must be rolled back with the failing second one.
        "0004_broken.sql": "CREATE TABLE app.half_done (id int);\nSELECT 1 / 0;\n",
    })
    yield
    engine_up(deployment.engine_stack)
    for tag in (NEXT_IMAGE, BROKEN_IMAGE, BAD_MIGRATION_IMAGE):
        subprocess.run(["docker", "rmi", tag], capture_output=True)


class Timeline:
    """Engine events of the containers, in the order the engine reported them."""

    def __init__(self) -> None:
        self.events: list[tuple[float, str, str, str]] = []  # (time, kind, op, name)

    def __call__(self, event: Any) -> None:
        for kind, payload in (("start", event.resource_pre_event), ("done", event.res_outputs_event)):
            if payload and payload.metadata.type == "docker:index/container:Container":
                self.events.append((time.monotonic(), kind, payload.metadata.op.value, payload.metadata.urn.split("::")[-1]))

    def span(self, name: str) -> tuple[int, int]:
        """First and last event index of a resource (both of a delete-before-replace pair)."""
        indexes = [i for i, (_, _, _, n) in enumerate(self.events) if n == name]
        assert indexes, f"{name} did not change; events: {self.events}"
        return indexes[0], indexes[-1]

    def changed(self) -> list[str]:
        return sorted({n for _, _, op, n in self.events if op not in ("same", "read")})


def served_certificate_digest(port: int, ca_pem: str) -> str:
    context = ssl.create_default_context()
    context.load_verify_locations(cadata=ca_pem)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, context.wrap_socket(raw, server_hostname="localhost") as tls:
        return hashlib.sha256(tls.getpeercert(binary_form=True) or b"").hexdigest()


def container_ids(deployment, role: str) -> dict[str, str]:
    listing = docker("ps", "-a", "--filter", f"label=medisys.role={role}", "--filter", f"name={deployment.prefix}-",
                     "--format", "{{.Names}} {{.ID}}")
    return dict(line.split() for line in listing.splitlines())


def schema_versions(deployment) -> list[int]:
    out = psql(leader_of(deployment), "SELECT version FROM app.schema_migrations ORDER BY version", database="medisys")
    return [int(v) for v in out.split()]


def record_rollout(name: str, figures: dict[str, Any]) -> None:
    record_figures("rollout", name, figures)


def steady_latency(deployment) -> dict[str, float]:
    with LoadGenerator(deployment.https_port, deployment.ca_pem) as steady:
        time.sleep(STEADY_SECONDS)
    report = steady.report(verify_writes=False)
    assert report.failed == 0, report.failures
    return report.latency_ms


def release_under_load(deployment, image: str, app_count: int) -> dict[str, Any]:
    """`pulumi up` of a new app image under load; asserts the rollout went one server at a time."""
    steady = steady_latency(deployment)
    timeline = Timeline()
    with LoadGenerator(deployment.https_port, deployment.ca_pem) as load:
        started = time.monotonic()
        engine_up(deployment.engine_stack, timeline, app={"count": app_count, "image": image})
        duration = time.monotonic() - started
    report = load.report()
    servers = [f"{deployment.prefix}-app-{i}" for i in range(1, app_count + 1)]
    # The migrations ran first; each server (and its gate) was done before the next was touched.
    assert timeline.span(f"{deployment.prefix}-app-migrations")[1] < timeline.span(servers[0])[0], timeline.events
    for earlier, later in zip(servers, servers[1:], strict=False):
        assert timeline.span(f"{earlier}-gate")[1] < timeline.span(later)[0], timeline.events
    figures = {"app_servers": app_count, "rollout_s": round(duration, 1), **report.as_dict(), "steady_latency_ms": steady}
    assert report.failed == 0, figures
    assert report.writes_lost == [], figures
    return figures


def test_release_rolls_one_server_at_a_time_after_its_migration_with_no_failed_request(deployment):
    figures = release_under_load(deployment, NEXT_IMAGE, 2)
    record_rollout("release, 2 app servers", figures)
    assert schema_versions(deployment) == [1, 2, 3]
    # Expand/contract: the new column (migration 0002) is filled by servers that know it.
    written_by = psql(leader_of(deployment),
                      "SELECT count(*) FROM app.notes WHERE written_by IS NOT NULL AND created_at > now() - interval '2 minutes'",
                      database="medisys")
    assert int(written_by) > 0


def test_failed_rollout_stops_at_one_server_and_the_rollback_restores_the_set(deployment):
    from pulumi import automation as auto

    before = container_ids(deployment, "app")
    with LoadGenerator(deployment.https_port, deployment.ca_pem) as load:
        with pytest.raises(auto.errors.CommandError) as failure:
            engine_up(deployment.engine_stack, app={"count": 2, "image": BROKEN_IMAGE})
        during = container_ids(deployment, "app")
        started = time.monotonic()
        engine_up(deployment.engine_stack, app={"count": 2, "image": NEXT_IMAGE})
        rollback_seconds = time.monotonic() - started
    report = load.report()
    message = str(failure.value)
    assert f"{deployment.prefix}-app-1" in message and "healthy" in message, message[-2000:]
    # Only the first server was touched: the second kept its container and served throughout.
    assert during.get(f"{deployment.prefix}-app-2") == before[f"{deployment.prefix}-app-2"]
    assert f"{deployment.prefix}-app-1" not in during or during[f"{deployment.prefix}-app-1"] != before[f"{deployment.prefix}-app-1"]
    record_rollout("failed rollout and rollback, 2 app servers", {"rollback_s": round(rollback_seconds, 1), **report.as_dict()})
    assert report.failed == 0, report.as_dict()
    assert report.writes_lost == []
    status, _, body = http(f"{deployment.https_url}/health", ca_pem=deployment.ca_pem)
    assert status == 200, body
    assert set(container_ids(deployment, "app")) == {f"{deployment.prefix}-app-1", f"{deployment.prefix}-app-2"}


def test_failing_migration_stops_the_release_before_any_server_changes(deployment):
    from pulumi import automation as auto

    before = container_ids(deployment, "app")
    with pytest.raises(auto.errors.CommandError) as failure:
        engine_up(deployment.engine_stack, app={"count": 2, "image": BAD_MIGRATION_IMAGE})
    assert "0004_broken failed and was rolled back" in str(failure.value), str(failure.value)[-2000:]
    assert container_ids(deployment, "app") == before
    assert schema_versions(deployment) == [1, 2, 3]
    exists = psql(leader_of(deployment), "SELECT to_regclass('app.half_done') IS NOT NULL", database="medisys")
    assert exists == "f"
    # Back to the last good release: the migrations job runs again and finds nothing to do.
    engine_up(deployment.engine_stack, app={"count": 2, "image": NEXT_IMAGE})


def test_haproxy_config_change_reloads_in_place_with_no_failed_request(deployment):
    before = container_ids(deployment, "load-balancer")
    with LoadGenerator(deployment.https_port, deployment.ca_pem) as load:
        time.sleep(2)
        engine_up(deployment.engine_stack, app={"count": 2, "image": NEXT_IMAGE}, load_balancer={"hsts_max_age_seconds": 63072000})
        time.sleep(2)
    report = load.report()
    record_rollout("HAProxy config change", report.as_dict())
    assert container_ids(deployment, "load-balancer") == before
    _, headers, _ = http(f"{deployment.https_url}/", ca_pem=deployment.ca_pem)
    assert "max-age=63072000" in headers["strict-transport-security"]
    # The reload handed the running worker's server states to the new one (server-state-file):
    # every app server of the set, with its address, so the new worker never starts empty.
    state = docker("exec", deployment.one("load-balancer"), "cat", SERVER_STATE_FILE)
    rows = [line.split() for line in state.splitlines() if line.strip() and not line.startswith("#")][1:]  # after the version line
    known = {row[3]: row[4] for row in rows if row[1] == APP_BACKEND and row[4] not in ("-", "0.0.0.0")}
    assert len(known) == 2, state
    assert report.failed == 0, report.as_dict()


def test_certificate_reissue_reloads_in_place_with_no_failed_request(deployment):
    before_ids = container_ids(deployment, "load-balancer")
    before_cert = served_certificate_digest(deployment.https_port, deployment.ca_pem)
    names = [*live_raw_config()["load_balancer"]["certificate"]["server_names"], "medisys.localhost"]
    with LoadGenerator(deployment.https_port, deployment.ca_pem) as load:
        time.sleep(2)
        engine_up(deployment.engine_stack, app={"count": 2, "image": NEXT_IMAGE},
                  load_balancer={"certificate": {"mode": "generated", "server_names": names}})
        time.sleep(2)
    report = load.report()
    record_rollout("edge certificate re-issue", report.as_dict())
    assert container_ids(deployment, "load-balancer") == before_ids
    assert served_certificate_digest(deployment.https_port, deployment.ca_pem) != before_cert
    assert report.failed == 0, report.as_dict()


def test_release_with_four_app_servers_rolls_one_at_a_time_with_no_failed_request(deployment):
    engine_up(deployment.engine_stack, app={"count": 4, "image": NEXT_IMAGE})
    try:
        figures = release_under_load(deployment, BASE_IMAGE, 4)
        record_rollout("release, 4 app servers", figures)
    finally:
        engine_up(deployment.engine_stack, app={"count": 2})


def leader_of(deployment) -> str:
    """The member that leads now (Patroni's runtime decision)."""
    return wait_whole(deployment)[0]


def test_postgres_setting_change_restarts_one_member_at_a_time_and_loses_no_write(deployment):
    # More memory means a new shared_buffers in postgresql.conf: each member's container is
    # replaced, one after the other; Patroni hands the leader lock over when the leader stops.
    members = [f"{deployment.prefix}-pg-{i}" for i in (1, 2)]
    memory = live_raw_config()["postgres"]["resources"]["memory_mb"] + 128
    timeline = Timeline()
    try:
        with LoadGenerator(deployment.https_port, deployment.ca_pem) as load:
            started = time.monotonic()
            engine_up(deployment.engine_stack, timeline, postgres={"resources": {"memory_mb": memory, "cpus": 0.5}})
            duration = time.monotonic() - started
            time.sleep(3)
        report = load.report()
        figures = {"rollout_s": round(duration, 1), **report.as_dict()}
        record_rollout("PostgreSQL setting change (restart), 2 members", figures)
        assert timeline.span(members[0])[1] < timeline.span(members[1])[0], timeline.events
        assert report.writes_lost == [], figures
        assert report.write_outage_seconds < 30, figures
    finally:
        engine_up(deployment.engine_stack)
