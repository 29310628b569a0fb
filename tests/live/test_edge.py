"""Edge tier, live: HTTPS only, TLS 1.2+, every app server in rotation, no error when one stops."""

from __future__ import annotations

import threading
import time

from tests.live.probes import docker, http, openssl_handshake

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
