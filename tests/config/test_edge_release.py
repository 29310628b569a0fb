"""The config-release job (components/templates/config-release.sh) as the load balancer runs it,
in the real HAProxy image: it installs a checked release, reloads a running master in place, and
refuses a broken config."""

from __future__ import annotations

import secrets
import subprocess
import time
from pathlib import Path

import pytest

import config as stack_config
from components.load_balancer import CONFIG_PATH as STAGED_CONFIG_PATH
from components.load_balancer import (
    MASTER_RELOAD,
    RUNTIME_DIR,
    STAGED_APP_CA_PATH,
    STAGED_CERTIFICATE_PATH,
    Backend,
    render_haproxy_cfg,
)
from components.templates import TEMPLATE_DIR
from tests.config.conftest import image, write_tree
from tests.support.mocks import issue_test_certificates

CFG = stack_config.load({"environment": "dev"}, "dev")


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args[:3])}: {result.stderr}")
    return result


@pytest.fixture
def runtime():
    """A runtime volume as the load balancer has it, and the names of what the test starts."""
    name = f"medisys-edge-test-{secrets.token_hex(3)}"
    docker("volume", "create", name)
    # A fresh volume on a directory the image owns takes that owner (haproxy), as in the stack.
    docker("run", "--rm", "-v", f"{name}:{RUNTIME_DIR}", "--entrypoint", "true", image("haproxy"))
    yield name
    docker("rm", "-f", f"{name}-haproxy", check=False)
    docker("volume", "rm", "-f", name, check=False)


def release(tmp_path: Path, runtime: str, cfg: str, app_ca: bool = True) -> subprocess.CompletedProcess[str]:
    certs = issue_test_certificates("localhost", ["localhost"], ["127.0.0.1"])
    staged = write_tree(tmp_path / secrets.token_hex(3), {
        "haproxy.cfg": cfg, "server.pem": certs["cert"] + certs["key"], "app-ca.crt": certs["ca"],
        "config-release": (TEMPLATE_DIR / "config-release.sh").read_text(),
    })
    # The files the edge-config job stages and installs (components/load_balancer.py); without the
    # app servers' CA the release lacks the file its backend names.
    files = [(STAGED_CONFIG_PATH, "haproxy.cfg"), (STAGED_CERTIFICATE_PATH, "server.pem")] + ([(STAGED_APP_CA_PATH, "app-ca.crt")] if app_ca else [])
    env = {
        "RELEASE_DIR": RUNTIME_DIR,
        "RELEASE_FILES": " ".join(f"{path}={name}" for path, name in files),
        "CHECK_COMMAND": f"haproxy -c -q -f {RUNTIME_DIR}/current/haproxy.cfg",
        "RELOAD_COMMAND": MASTER_RELOAD,
    }
    return docker(
        "run", "--rm", "--network", "none", "-v", f"{runtime}:{RUNTIME_DIR}", *[a for k, v in env.items() for a in ("-e", f"{k}={v}")],
        *[a for path, name in files for a in ("-v", f"{staged}/{name}:{path}:ro")],
        "-v", f"{staged}/config-release:/usr/local/bin/config-release:ro",
        "--entrypoint", "sh", image("haproxy"), "/usr/local/bin/config-release", check=False,
    )


def current(runtime: str) -> str:
    return docker("run", "--rm", "-v", f"{runtime}:{RUNTIME_DIR}", "--entrypoint", "readlink", image("haproxy"),
                  f"{RUNTIME_DIR}/current").stdout.strip()


def config(hsts: int = 31536000) -> str:
    # Stats on loopback: the test container has no management segment.
    return render_haproxy_cfg(CFG.load_balancer.model_copy(update={"hsts_max_age_seconds": hsts}), Backend("app", 8080, 4), "127.0.0.1")


def test_first_release_is_checked_and_installed_for_haproxy_to_start_from(tmp_path, runtime):
    result = release(tmp_path, runtime, config())
    assert result.returncode == 0, result.stderr
    assert "the service is not running" in result.stdout
    assert current(runtime).startswith("releases/")


def test_new_release_reloads_the_running_master_in_place(tmp_path, runtime):
    assert release(tmp_path, runtime, config()).returncode == 0
    first = current(runtime)
    container = docker(
        "run", "-d", "--name", f"{runtime}-haproxy", "--network", "none", "-v", f"{runtime}:{RUNTIME_DIR}", image("haproxy"),
        "haproxy", "-W", "-db", "-S", f"{RUNTIME_DIR}/master.sock,mode,600", "-f", f"{RUNTIME_DIR}/current/haproxy.cfg",
    ).stdout.strip()
    for _ in range(30):
        if docker("exec", container, "test", "-S", f"{RUNTIME_DIR}/master.sock", check=False).returncode == 0:
            break
        time.sleep(0.5)
    result = release(tmp_path, runtime, config(hsts=63072000))
    assert result.returncode == 0, result.stderr
    assert "reloaded release" in result.stdout
    assert current(runtime) != first
    # Same container, master still up, and a worker of the second generation now serving.
    state = docker("inspect", "--format", "{{.Id}} {{.State.Running}}", f"{runtime}-haproxy").stdout.split()
    assert state == [container, "true"]
    procs = docker("exec", container, "sh", "-c", f"echo 'show proc' | socat stdio unix-connect:{RUNTIME_DIR}/master.sock").stdout
    assert "worker" in procs and " 1 " in procs.replace("\t", " "), procs


def test_release_carries_the_app_servers_ca_its_backend_verifies_with(tmp_path, runtime):
    assert release(tmp_path, runtime, config()).returncode == 0
    listing = docker("run", "--rm", "-v", f"{runtime}:{RUNTIME_DIR}", "--entrypoint", "ls", image("haproxy"), f"{RUNTIME_DIR}/current/").stdout
    assert sorted(listing.split()) == ["app-ca.crt", "haproxy.cfg", "server.pem"]


def test_release_without_the_app_servers_ca_is_refused_by_its_check(tmp_path, runtime):
    result = release(tmp_path, runtime, config(), app_ca=False)
    assert result.returncode == 1
    assert "refused by its check" in result.stderr  # `haproxy -c -q` (quiet): test_rendered_configs shows its reason
    assert docker("run", "--rm", "-v", f"{runtime}:{RUNTIME_DIR}", "--entrypoint", "sh", image("haproxy"), "-c",
                  f"test -e {RUNTIME_DIR}/current || echo none").stdout.strip() == "none"


def test_broken_release_is_refused_and_the_previous_one_stays(tmp_path, runtime):
    assert release(tmp_path, runtime, config()).returncode == 0
    before = current(runtime)
    result = release(tmp_path, runtime, config().replace("ssl-min-ver TLSv1.2 alpn", "ssl-min-ver TLSv9 alpn"))
    assert result.returncode == 1
    assert "refused by its check" in result.stderr
    assert current(runtime) == before
