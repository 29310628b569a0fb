"""Data tier, live: streaming replication, a read-only replica, TLS-only access, restorable backups.

Which member leads is Patroni's runtime decision: each check asks the cluster (tests/live/cluster.py).
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid
from pathlib import Path

from tests.live.cluster import wait_whole
from tests.live.probes import exec_in, http, psql

ROOT = Path(__file__).resolve().parents[2]
DATABASE = "medisys"


def write_note(deployment, text: str) -> int:
    status, _, body = http(f"{deployment.https_url}/api/notes", ca_pem=deployment.ca_pem, method="POST", body={"body": text})
    assert status == 201, body
    return json.loads(body)["id"]


def test_row_written_through_the_api_reaches_the_replica_within_5_seconds(deployment):
    text = f"replicated-{uuid.uuid4()}"
    note = write_note(deployment, text)
    _, (replica, *_) = wait_whole(deployment)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if psql(replica, f"SELECT body FROM app.notes WHERE id = {note}", DATABASE) == text:
            return
        time.sleep(0.2)
    raise AssertionError("the row did not reach the replica within 5 s")


def test_leader_shows_every_replica_streaming_through_its_own_slot(deployment):
    primary, replicas = wait_whole(deployment)
    # Patroni names each replica's slot after the member (dashes become underscores).
    assert psql(primary, "SELECT application_name, state FROM pg_stat_replication ORDER BY 1").splitlines() == [f"{r}|streaming" for r in replicas]
    slots = psql(primary, "SELECT slot_name, active FROM pg_replication_slots ORDER BY 1").splitlines()
    assert slots == [f"{r.replace('-', '_')}|t" for r in replicas]


def test_replica_refuses_writes(deployment):
    _, (replica, *_) = wait_whole(deployment)
    result = subprocess.run(
        ["docker", "exec", replica, "psql", "-h", "/var/run/postgresql", "-U", "postgres", "-d", DATABASE, "-c", "CREATE TABLE app.probe (x int)"],
        capture_output=True, text=True,
    )
    assert result.returncode != 0
    assert "read-only transaction" in result.stderr


CONNECT = """
import sys, psycopg
password = open('/run/secrets/db_password').read().strip()
try:
    psycopg.connect(host=sys.argv[1], dbname='medisys', user='medisys_app', password=password,
                    sslmode=sys.argv[2], sslrootcert='/etc/medisys/tls/ca.crt', connect_timeout=5).close()
    print('connected')
except psycopg.OperationalError as error:
    print('refused:', error)
"""


def test_connection_without_tls_from_the_app_segment_is_refused(deployment):
    app = deployment.roles["app"][0]
    # Through the endpoint: TLS runs end to end, and the member's certificate names the endpoint.
    endpoint = deployment.addresses["postgres_endpoint"]
    plain = exec_in(app, "python3", "-c", CONNECT, endpoint, "disable")
    assert plain.startswith("refused:") and "no encryption" in plain
    verified = exec_in(app, "python3", "-c", CONNECT, endpoint, "verify-full")
    assert verified.strip() == "connected"


def test_backup_is_taken_listed_encrypted_and_retained(deployment):
    agent = deployment.one("postgres-backup")
    info = json.loads(exec_in(agent, "pgbackrest", "--stanza=main", "--output=json", "info"))[0]
    assert info["status"]["code"] == 0, info["status"]
    assert info["cipher"] == "aes-256-cbc"
    assert [b["type"] for b in info["backup"]][:1] == ["full"]
    config = exec_in(agent, "cat", "/etc/pgbackrest/pgbackrest.conf")
    assert "repo1-retention-full-type=time" in config and "repo1-retention-full=7" in config
    metrics = exec_in(agent, "cat", "/var/lib/medisys-backup/www/metrics")
    assert re.search(r'^medisys_backup_last_success_timestamp_seconds\{stanza="main",repo="1",repo_type="posix",type="full"\} [0-9]+$', metrics, re.M)


def test_backup_restores_into_a_scratch_container_with_the_row(deployment):
    text = f"restorable-{uuid.uuid4()}"
    note = write_note(deployment, text)
    # `check` switches to a new WAL segment and waits until it is archived: the row is in the repository.
    exec_in(deployment.one("postgres-backup"), "pgbackrest", "--stanza=main", "check")
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "restore-backup"), deployment.prefix, "--sql", f"SELECT body FROM app.notes WHERE id = {note}"],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == text


def test_cluster_is_whole_again_after_a_replica_and_then_the_leader_restart(deployment):
    primary, (replica, *_) = wait_whole(deployment)
    subprocess.run(["docker", "restart", replica], check=True, capture_output=True)
    wait_whole(deployment)
    # A leader stopped gracefully hands the lock over; either way one member leads, the other follows.
    subprocess.run(["docker", "restart", primary], check=True, capture_output=True)
    _, (replica, *_) = wait_whole(deployment)
    # Nothing was lost and the replica still follows: a new row arrives through the app.
    text = f"after-restart-{uuid.uuid4()}"
    deadline = time.monotonic() + 60
    while True:
        try:
            note = write_note(deployment, text)
            break
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)
    deadline = time.monotonic() + 10
    while psql(replica, f"SELECT body FROM app.notes WHERE id = {note}", DATABASE) != text:
        assert time.monotonic() < deadline, "the row did not reach the replica after the restarts"
        time.sleep(0.5)


def test_point_in_time_restore_stops_before_a_later_row(deployment):
    before = write_note(deployment, f"before-{uuid.uuid4()}")
    primary, _ = wait_whole(deployment)
    # pgBackRest takes milliseconds and a numeric zone: 2026-11-23 18:00:00.123+00
    target = psql(primary, "SELECT to_char(now(), 'YYYY-MM-DD HH24:MI:SS.MSOF')")
    time.sleep(1.5)
    after = write_note(deployment, f"after-{uuid.uuid4()}")
    exec_in(deployment.one("postgres-backup"), "pgbackrest", "--stanza=main", "check")
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "restore-backup"), deployment.prefix, "--target-time", target,
         "--sql", f"SELECT string_agg(id::text, ',' ORDER BY id) FROM app.notes WHERE id IN ({before}, {after})"],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().splitlines()[-1] == str(before)
