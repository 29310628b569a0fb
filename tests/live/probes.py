"""Ways the live checks look at the stack: HTTPS on loopback and `docker exec`, nothing else."""

from __future__ import annotations

import json
import shlex
import ssl
import subprocess
import tempfile
import urllib.error
import urllib.request
from typing import Any


def exec_in(container: str, *command: str, check: bool = True, input: str | None = None, timeout: int = 60) -> str:
    result = subprocess.run(["docker", "exec", "-i", container, *command], capture_output=True, text=True, input=input, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"`{' '.join(command)}` in {container} failed ({result.returncode}): {result.stderr.strip()[:800]}")
    return result.stdout


def docker(*args: str, check: bool = True, timeout: int = 120) -> str:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed: {result.stderr.strip()[:800]}")
    return result.stdout


def tls_context(ca_pem: str) -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.load_verify_locations(cadata=ca_pem)
    return context


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def http(url: str, *, ca_pem: str | None = None, method: str = "GET", body: dict | None = None, timeout: float = 5) -> tuple[int, dict[str, str], str]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    handlers: list[Any] = [NoRedirect()]
    if ca_pem:
        handlers.append(urllib.request.HTTPSHandler(context=tls_context(ca_pem)))
    opener = urllib.request.build_opener(*handlers)
    try:
        with opener.open(request, timeout=timeout) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read().decode()


def psql(container: str, sql: str, database: str = "postgres", check: bool = True) -> str:
    """As the postgres OS user over the local socket (peer authentication)."""
    return exec_in(container, "psql", "-h", "/var/run/postgresql", "-U", "postgres", "-d", database, "-qAt", "-v", "ON_ERROR_STOP=1", "-c", sql, check=check).strip()


def redis_cli(node: str, address: str, *args: str, check: bool = True) -> str:
    """redis-cli over TLS inside a node, with the password from the node's own secrets file."""
    script = (
        'REDISCLI_AUTH=$(sed -n "s/^requirepass //p" /etc/redis/secrets.conf) '
        f"exec redis-cli --tls --cacert /etc/redis/tls/ca.crt -h {address} -p 6379 " + " ".join(shlex.quote(a) for a in args)
    )
    return exec_in(node, "sh", "-c", script, check=check).strip()


def prometheus_api(container: str, path: str) -> Any:
    raw = exec_in(container, "curl", "-fsS", f"http://127.0.0.1:9090{path}")
    return json.loads(raw)["data"]


def alertmanager_alerts(container: str) -> list[dict[str, Any]]:
    return json.loads(exec_in(container, "curl", "-fsS", "http://127.0.0.1:9093/api/v2/alerts"))


def openssl_handshake(port: int, *flags: str, ca_pem: str) -> subprocess.CompletedProcess[str]:
    with tempfile.NamedTemporaryFile("w", suffix=".pem") as ca:
        ca.write(ca_pem)
        ca.flush()
        return subprocess.run(
            ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "localhost", "-CAfile", ca.name, *flags],
            input="", capture_output=True, text=True, timeout=20,
        )
