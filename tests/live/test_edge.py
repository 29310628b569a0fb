"""Edge tier, live: HTTPS only, TLS 1.2+, every app server in rotation, no error when one stops, and
no plain-text hop behind the edge: HAProxy and Prometheus reach the app servers over verified TLS."""

from __future__ import annotations

import subprocess
import threading
import time

from components.load_balancer import APP_BACKEND, APP_CA_PATH, MASTER_SOCKET
from tests.live.probes import docker, exec_in, http, openssl_handshake, prometheus_api

BOUNDED_REQUESTS = 150


def test_https_answers_200_from_the_reference_app(deployment):
    status, headers, body = http(f"{deployment.https_url}/", ca_pem=deployment.ca_pem)
    assert status == 200 and '"service": "medisys-app"' in body
    assert headers["strict-transport-security"].startswith("max-age=31536000")


def test_consecutive_requests_reach_every_app_server(deployment):
    served_by = {http(f"{deployment.https_url}/", ca_pem=deployment.ca_pem)[1]["x-served-by"] for _ in range(12)}
    assert served_by == set(deployment.roles["app"])


def test_plain_http_only_redirects_to_https(deployment):
    status, headers, _ = http(f"http://127.0.0.1:{deployment.http_port}/api/notes/1?x=1")
    assert status == 301
    assert headers["location"] == f"https://127.0.0.1:{deployment.https_port}/api/notes/1?x=1"


def test_tls_1_1_handshake_is_refused_and_tls_1_2_accepted(deployment):
    # SECLEVEL=0 lets this client offer TLS 1.1 at all, so a failure is the server's refusal.
    old = openssl_handshake(deployment.https_port, "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0", ca_pem=deployment.ca_pem)
    assert old.returncode != 0
    assert "alert protocol version" in old.stderr + old.stdout
    modern = openssl_handshake(deployment.https_port, "-tls1_2", ca_pem=deployment.ca_pem)
    assert modern.returncode == 0 and "Verify return code: 0 (ok)" in modern.stdout


def test_only_the_load_balancer_publishes_ports(deployment):
    published = {}
    for names in deployment.roles.values():
        for name in names:
            ports = docker("port", name, check=False).strip()
            if ports:
                published[name] = ports
    assert list(published) == deployment.roles["load-balancer"]
    assert all(line.split("-> ")[1].startswith("127.0.0.1:") for line in published[deployment.one("load-balancer")].splitlines())


def test_stopping_one_app_server_fails_no_request(deployment):
    victim = deployment.roles["app"][0]
    failures: list[str] = []
    done = threading.Event()

    def loop() -> None:
        for _ in range(BOUNDED_REQUESTS):
            try:
                status, _, _ = http(f"{deployment.https_url}/", ca_pem=deployment.ca_pem)
                if status != 200:
                    failures.append(str(status))
            except OSError as error:
                failures.append(repr(error))
            time.sleep(0.05)
        done.set()

    client = threading.Thread(target=loop)
    client.start()
    time.sleep(1)
    docker("stop", victim)
    client.join(timeout=120)
    docker("start", victim)
    assert done.is_set(), "the request loop did not finish"
    assert failures == []
    wait_until_in_rotation(deployment, victim)


def wait_until_in_rotation(deployment, server: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if http(f"{deployment.https_url}/", ca_pem=deployment.ca_pem)[1].get("x-served-by") == server:
            return
        time.sleep(0.5)
    raise AssertionError(f"{server} did not come back into rotation within {timeout} s")


# --- behind the edge: TLS to the app servers ----------------------------------------------------


def test_app_servers_answer_only_https_verified_for_the_name_haproxy_checks(deployment):
    lb = deployment.one("load-balancer")
    # From the edge, through the alias HAProxy resolves, with the CA of HAProxy's own release.
    verified = exec_in(lb, "curl", "-fsS", "--cacert", APP_CA_PATH, "https://app:8080/health")
    assert '"status": "ok"' in verified
    plain = exec_in(lb, "curl", "-fsS", "--max-time", "5", "http://app:8080/health", check=False)
    assert '"status"' not in plain  # no plain-HTTP answer on the app port
    unverified = subprocess.run(["docker", "exec", lb, "curl", "-fsS", "--max-time", "5", "https://app:8080/health"],
                                capture_output=True, timeout=30)
    assert unverified.returncode == 60  # curl: the certificate is not trusted without the internal CA


def test_haproxy_uses_tls_to_every_app_server_and_its_checks_pass(deployment):
    lb = deployment.one("load-balancer")
    state = exec_in(lb, "sh", "-c", f'echo "@1 show servers state {APP_BACKEND}" | socat -t 10 stdio unix-connect:{MASTER_SOCKET}')
    lines = [line for line in state.splitlines() if line.strip()]
    header = next(line for line in lines if line.startswith("# be_id")).lstrip("# ").split()
    rows = [dict(zip(header, line.split(), strict=False)) for line in lines if not line.startswith("#") and len(line.split()) == len(header)]
    servers = [r for r in rows if r["srv_addr"] not in ("-", "0.0.0.0")]
    assert len(servers) == len(deployment.roles["app"]), state
    # Every resolved app server: TLS on (srv_use_ssl), running (op state 2) after passing its check.
    assert {(r["srv_use_ssl"], r["srv_op_state"]) for r in servers} == {("1", "2")}, state


def test_prometheus_scrapes_every_app_server_over_https(deployment):
    prometheus = deployment.one("prometheus")
    deadline, apps = time.monotonic() + 90, []
    while time.monotonic() < deadline:
        targets = prometheus_api(prometheus, "/api/v1/targets")["activeTargets"]
        apps = [t for t in targets if t["labels"]["job"] == "app"]
        if len(apps) == len(deployment.roles["app"]) and all(t["health"] == "up" for t in apps):
            break
        time.sleep(2)
    assert sorted(t["labels"]["server"] for t in apps) == sorted(deployment.roles["app"])
    assert all(t["health"] == "up" and t["scrapeUrl"].startswith("https://") for t in apps), apps
