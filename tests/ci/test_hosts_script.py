"""scripts/hosts: shellcheck-clean, and (as root, with dockerd installed) three Docker hosts in one
Swarm that carry an overlay between containers on different hosts, and that `down` removes whole.

The live part makes its hosts in a state directory of its own (a short path under /tmp: the
engines' unix sockets must stay under 108 bytes) and brings no image from a registry: it imports a
tiny image (this machine's own perl, its libraries and perl-base's modules, a few MB) straight into
two of the hosts with `docker import`.

No pytest marker: the repository registers none for this (only `slow`, for alert round trips); the
live part skips itself where it cannot run (not root, no dockerd) and fails under CI=true where a
tool is missing.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ci.conftest import ROOT

SCRIPT = ROOT / "scripts" / "hosts"
LIBRARY = ROOT / "scripts" / "lib" / "hosts.sh"
IN_CI = os.environ.get("CI", "").lower() == "true"
HOSTS = 3
BRIDGE = "mdshosts0"
OVERLAY_SUBNET = "10.251.0.0/24"
TINY_IMAGE = "medisys-hosts-test/tiny:1"


def test_the_hosts_scripts_are_shellcheck_clean() -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        message = "shellcheck is not installed (apt-get install -y shellcheck)"
        if IN_CI:
            pytest.fail(message + ": CI must lint scripts/hosts")
        pytest.skip(message)
    done = subprocess.run([shellcheck, "-x", str(SCRIPT), str(LIBRARY)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_script_is_executable_and_explains_itself() -> None:
    assert os.access(SCRIPT, os.X_OK)
    done = subprocess.run([str(SCRIPT), "--help"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and "scripts/hosts up" in done.stdout and "cut hN" in done.stdout
    wrong = subprocess.run([str(SCRIPT), "frobnicate"], capture_output=True, text=True, timeout=30)
    assert wrong.returncode != 0
    (line,) = wrong.stderr.strip().splitlines()
    assert "ERROR" in line and "Use one of" in line


# --- live: three engines, a Swarm, an overlay --------------------------------------------------


def _live_skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces, iptables, dockerd)"
    if shutil.which("dockerd") is None or shutil.which("docker") is None:
        return "needs dockerd (bash scripts/lib/docker-engine.sh installs Debian's docker.io)"
    if Path(f"/sys/class/net/{BRIDGE}").exists():
        return f"scripts/hosts is already up on this machine ({BRIDGE} exists): run `scripts/hosts down` first"
    return None


def _run(*args: str, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=timeout)


def _tiny_image_tar() -> bytes:
    """A root file system with this machine's perl (IO::Socket for a TCP server and client), the
    libraries it links and perl-base's modules: a few MB, no shell, no busybox."""
    perl = shutil.which("perl") or "/usr/bin/perl"
    where = subprocess.run([perl, "-MIO::Socket::INET", "-e", 'print $INC{"IO/Socket/INET.pm"}'], capture_output=True, text=True, check=True).stdout
    module_dir = Path(where.removesuffix("/IO/Socket/INET.pm"))
    files = {Path("/usr/bin/perl"): Path(perl).resolve()}
    for line in subprocess.run(["ldd", perl], capture_output=True, text=True, check=True).stdout.splitlines():
        for word in line.split():
            if word.startswith("/"):
                files[Path(word)] = Path(word).resolve()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, real in files.items():
            tar.add(str(real), arcname=str(name).lstrip("/"))
        tar.add(str(module_dir), arcname=str(module_dir).lstrip("/"))
        for empty in ("etc", "tmp", "proc", "sys", "dev"):
            info = tarfile.TarInfo(empty)
            info.type = tarfile.DIRTYPE
            info.mode = 0o1777 if empty == "tmp" else 0o755
            tar.addfile(info)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def hosts() -> Iterator[dict[str, str]]:
    reason = _live_skip_reason()
    if reason:
        if IN_CI and os.geteuid() == 0 and shutil.which("dockerd"):
            pytest.fail(reason)
        pytest.skip(reason)
    state = tempfile.mkdtemp(prefix="mdsh-", dir="/tmp")
    env = {**os.environ, "MEDISYS_HOSTS_DIR": state, "MEDISYS_HOSTS": str(HOSTS)}
    for name in ("DOCKER_HOST", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_CONTEXT"):
        env.pop(name, None)
    env["MEDISYS_TEST_STATE"] = state
    try:
        started = time.monotonic()
        done = _run("up", "--no-images", env=env)
        assert done.returncode == 0, f"scripts/hosts up failed:\n{done.stdout}\n{done.stderr}"
        env["MEDISYS_TEST_UP_SECONDS"] = f"{time.monotonic() - started:.1f}"
        yield env
    finally:
        down = _run("down", "--purge", env=env)
        shutil.rmtree(state, ignore_errors=True)
        assert down.returncode == 0, f"scripts/hosts down failed:\n{down.stdout}\n{down.stderr}"


def tls_docker(env: dict[str, str], n: int, *args: str, check: bool = True, timeout: float = 60) -> str:
    pki = Path(env["MEDISYS_TEST_STATE"]) / "pki"
    command = ["docker", "-H", f"tcp://10.99.0.{10 + n}:2376", "--tlsverify", "--tlscacert", str(pki / "ca.pem"),
               "--tlscert", str(pki / "client-cert.pem"), "--tlskey", str(pki / "client-key.pem"), *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if check:
        assert done.returncode == 0, f"{' '.join(command[3:4] + list(args))}: {done.stderr}"
    return done.stdout.strip()


def test_every_host_answers_over_tls_and_the_swarm_has_three_ready_managers(hosts: dict[str, str]) -> None:
    for n in range(1, HOSTS + 1):
        assert tls_docker(hosts, n, "version", "--format", "{{.Server.Version}}")
        assert tls_docker(hosts, n, "info", "--format", "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}") == "active true"
    nodes = tls_docker(hosts, 1, "node", "ls", "--format", "{{.Hostname}} {{.Status}} {{.ManagerStatus}}").splitlines()
    assert sorted(line.split()[0] for line in nodes) == ["h1", "h2", "h3"]
    assert all(line.split()[1] == "Ready" and line.split()[2] in {"Leader", "Reachable"} for line in nodes), nodes
    # A second up changes nothing and says so.
    again = _run("up", "--no-images", env=hosts)
    assert again.returncode == 0, again.stderr
    assert "started" not in again.stdout and "joined" not in again.stdout and "initialised" not in again.stdout, again.stdout
    status = _run("status", env=hosts)
    assert status.returncode == 0 and len(status.stdout.strip().splitlines()) == HOSTS, status.stdout + status.stderr


def test_containers_on_two_hosts_talk_over_an_attachable_overlay(hosts: dict[str, str]) -> None:
    tag = uuid.uuid4().hex[:6]
    network, server = f"mdsh-test-{tag}", f"mdsh-server-{tag}"
    tar = _tiny_image_tar()
    for n in (1, 2):
        pki = Path(hosts["MEDISYS_TEST_STATE"]) / "pki"
        done = subprocess.run(
            ["docker", "-H", f"tcp://10.99.0.{10 + n}:2376", "--tlsverify", "--tlscacert", str(pki / "ca.pem"), "--tlscert",
             str(pki / "client-cert.pem"), "--tlskey", str(pki / "client-key.pem"), "import", "-", TINY_IMAGE],
            input=tar, capture_output=True, timeout=120,
        )
        assert done.returncode == 0, done.stderr.decode()
    tls_docker(hosts, 1, "network", "create", "--driver", "overlay", "--attachable", "--subnet", OVERLAY_SUBNET, network)
    serve = ('my $s = IO::Socket::INET->new(LocalPort => 7000, Listen => 5, ReuseAddr => 1) or die "listen: $!";'
             ' while (my $c = $s->accept) { print $c "pong from $ARGV[0]\\n"; close $c }')
    tls_docker(hosts, 1, "run", "-d", "--name", server, "--network", network, "--ip", "10.251.0.10", "--stop-timeout", "1",
               TINY_IMAGE, "/usr/bin/perl", "-MIO::Socket::INET", "-e", serve, "h1")
    ask = ('my $c; for (1..30) { $c = IO::Socket::INET->new(PeerAddr => $ARGV[0], Timeout => 2) and last; sleep 1 }'
           ' $c or die "connect $ARGV[0]: $@"; print scalar <$c>')
    # By name (the Swarm's DNS on the overlay) and by address, from a container on h2.
    for target in (f"{server}:7000", "10.251.0.10:7000"):
        answer = tls_docker(hosts, 2, "run", "--rm", "--network", network, TINY_IMAGE, "/usr/bin/perl", "-MIO::Socket::INET",
                            "-e", ask, target, timeout=90)
        assert answer == "pong from h1", answer


def test_a_container_replaced_on_its_engine_gets_its_overlay_address_back(hosts: dict[str, str]) -> None:
    """What the program relies on: a replacement is delete-before-create at the same fixed address
    (components/container.py), and on an attachable overlay the address is free again at once
    for a new container on the same engine (Docker's trouble with fixed overlay addresses,
    moby#27754, is an address held by a container of an engine that went down)."""
    tag = uuid.uuid4().hex[:6]
    network = f"mdsh-reuse-{tag}"
    tls_docker(hosts, 1, "network", "create", "--driver", "overlay", "--attachable", "--subnet", "10.251.1.0/24", network)
    try:
        for attempt in range(5):
            name = f"mdsh-reuse-{tag}-{attempt}"
            # The image (imported by the test above) on h2; the network was made on h1.
            tls_docker(hosts, 2, "run", "-d", "--name", name, "--network", network, "--ip", "10.251.1.20", TINY_IMAGE,
                       "/usr/bin/perl", "-e", "sleep 600", timeout=90)
            address = tls_docker(hosts, 2, "inspect", "--format", f'{{{{(index .NetworkSettings.Networks "{network}").IPAddress}}}}', name)
            assert address == "10.251.1.20", f"attempt {attempt}: {address}"
            tls_docker(hosts, 2, "rm", "-f", name)
    finally:
        tls_docker(hosts, 1, "network", "rm", network, check=False)


def test_down_leaves_nothing_behind(hosts: dict[str, str]) -> None:
    state = Path(hosts["MEDISYS_TEST_STATE"])
    started = time.monotonic()
    done = _run("down", env=hosts)
    assert done.returncode == 0, done.stdout + done.stderr
    took = time.monotonic() - started
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not [line for line in namespaces.splitlines() if line.startswith("medisys-h")], namespaces
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    assert BRIDGE not in links and "mdsh-h" not in links, links
    engines = subprocess.run(["pgrep", "-af", "dockerd|containerd"], capture_output=True, text=True).stdout
    assert str(state) not in engines, engines
    rules = subprocess.run(["iptables", "-S"], capture_output=True, text=True).stdout
    assert "medisys-hosts" not in rules, rules
    assert not [p for p in state.glob("h*")], list(state.iterdir())
    assert (state / "pki" / "ca.pem").exists(), "down keeps the CA and certificates (down --purge removes them)"
    mounts = Path("/proc/self/mounts").read_text()
    assert str(state) not in mounts
    # And again: down is safe when nothing is up.
    again = _run("down", env=hosts)
    assert again.returncode == 0, again.stdout + again.stderr
    print(f"up --no-images {hosts['MEDISYS_TEST_UP_SECONDS']}s, down {took:.1f}s")
