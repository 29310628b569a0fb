"""Data tier, live: streaming replication, a read-only replica, TLS-only access, restorable backups
taken by the repository host (the backup agent) over pgBackRest's TLS server.

Which member leads is Patroni's runtime decision: each check asks the cluster (tests/live/cluster.py).
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid
from pathlib import Path

from tests.live.cluster import wait_for, wait_whole
from tests.live.probes import docker, exec_in, http, psql

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


def mounts(container: str) -> list[str]:
    """`volume:destination` of each volume the container mounts."""
    listing = docker("inspect", "--format", '{{range .Mounts}}{{.Name}}:{{.Destination}} {{end}}', container)
    return sorted(listing.split())


def test_only_the_repository_host_mounts_the_repository_and_holds_its_cipher_passes(deployment):
    agent = deployment.one("postgres-backup")
    # Its own repository volume and nothing of the members': it reaches them over TLS.
    assert mounts(agent) == [f"{deployment.prefix}-backup-repository:/var/lib/pgbackrest"]
    for member in deployment.roles["postgres"]:
        assert [m for m in mounts(member) if "/var/lib/pgbackrest" in m or "backup" in m] == [], mounts(member)
        assert exec_in(member, "ls", "/etc/pgbackrest/conf.d", check=False).split() == []
        conf = exec_in(member, "cat", "/etc/pgbackrest/pgbackrest.conf")
        settings = [line for line in conf.splitlines() if line and not line.startswith("#")]
        assert {"repo1-host-type=tls", "repo2-host-type=tls"} <= set(settings) and not [line for line in settings if "cipher" in line]
    # The member reads the repository through the agent, the cipher pass coming from there.
    info = exec_in(deployment.roles["postgres"][0], "pgbackrest", "--stanza=main", "--repo=1", "info")
    assert "cipher: aes-256-cbc" in info and "full backup" in info


def database_address(container: str) -> str:
    return docker("inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", container).split()[0]


def logs(container: str, since: str) -> str:
    result = subprocess.run(["docker", "logs", "--since", since, container], capture_output=True, text=True, timeout=60)
    return result.stdout + result.stderr


def test_a_members_tls_server_lets_in_the_repository_host_only(deployment):
    first, second = deployment.roles["postgres"][:2]
    # The other member's TLS server, reached with this member's client certificate: of the stack's
    # CA, but not the name that member lets in (the agent's).
    result = subprocess.run(
        ["docker", "exec", first, "pgbackrest", "--no-config", "--stanza=main", f"--pg1-host={database_address(second)}",
         "--pg1-host-type=tls", "--pg1-host-ca-file=/etc/pgbackrest/tls/ca.crt", "--pg1-host-cert-file=/etc/pgbackrest/tls/client.crt",
         "--pg1-host-key-file=/var/lib/postgresql/pgbackrest-tls/client.key", "--pg1-path=/var/lib/postgresql/members/2/pgdata",
         "--repo1-path=/tmp/no-repository", "--io-timeout=5", "check"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode != 0 and "access denied" in result.stdout + result.stderr, result.stdout[-1500:] + result.stderr[-1500:]


def test_a_members_tls_server_is_started_again_when_it_dies_and_backups_go_on(deployment):
    _, (replica, *_) = wait_whole(deployment)
    since = docker("inspect", "--format", "{{.State.StartedAt}}", replica).strip()
    exec_in(replica, "pkill", "-x", "pgbackrest")
    # The entrypoint's supervisor starts it again a second later; Patroni and PostgreSQL never notice.
    wait_for(lambda: "starting it again" in logs(replica, since), 30, "the TLS server's restart logged")
    health = ["docker", "exec", replica, "medisys-postgres-health", f"https://{database_address(replica)}:8008/health"]
    wait_for(lambda: subprocess.run(health, capture_output=True, timeout=30).returncode == 0, 30, "the replica's health check passing again")
    assert docker("inspect", "--format", "{{.State.Health.Status}}", replica).strip() == "healthy"
    # The repository host reaches every member again: its check (all members, both repositories) passes.
    exec_in(deployment.one("postgres-backup"), "pgbackrest", "--stanza=main", "check", timeout=180)


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
