"""The set-up's online path (toolchain/upstream.py, scripts/lib/providers.sh): Pulumi's release
archives are used when they can be downloaded with a matching published checksum, the stand-ins
otherwise, and one line says which. A local HTTP server on 127.0.0.1 plays Pulumi's release
location through PULUMI_PLUGIN_DOWNLOAD_URL_OVERRIDES, so the online branch really runs here.
Everything is installed into temporary directories, never the shared cache."""

from __future__ import annotations

import functools
import hashlib
import io
import os
import shutil
import socket
import subprocess
import tarfile
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.support.engine import engine_env, toolchain_status
from toolchain import upstream

ROOT = Path(__file__).resolve().parents[2]
PROVIDERS = {"docker": "5.2.0", "random": "4.21.4", "postgresql": "3.18.2", "tls": "5.6.2"}
# Pulumi's source URL for an official plugin is github://api.github.com/pulumi/pulumi-NAME.
OVERRIDE = "^github://api.github.com/pulumi/=http://127.0.0.1:{port}/mirror/${{NAME}}/v${{VERSION}}"


def fake_plugin_tarball(name: str, version: str) -> bytes:
    """A release archive laid out as Pulumi's: the executable and its notes at the archive's root."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for member, text, mode in ((f"pulumi-resource-{name}", f"#!/bin/sh\necho fake {name} {version}\n", 0o755),
                                   ("README.md", f"fake {name}\n", 0o644)):
            data = text.encode()
            info = tarfile.TarInfo(member)
            info.size, info.mode = len(data), mode
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class Mirror:
    """Serves DIR over HTTP on 127.0.0.1 and records the paths asked for."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.requests: list[str] = []
        mirror = self

        class Handler(SimpleHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                mirror.requests.append(self.path)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(directory)))
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def publish(self, name: str, version: str, tamper: bool = False) -> str:
        """Puts NAME's archive and goreleaser's checksums file where the override points; returns the archive name."""
        release = self.directory / "mirror" / name / f"v{version}"
        release.mkdir(parents=True, exist_ok=True)
        archive = upstream.plugin_archive(name, version)
        data = fake_plugin_tarball(name, version)
        (release / archive).write_bytes(data)
        published = hashlib.sha256(data + (b"x" if tamper else b"")).hexdigest()
        (release / upstream.plugin_sums(name, version)).write_text(
            f"{'0' * 64}  pulumi-resource-{name}-v{version}-windows-amd64.tar.gz\n{published}  {archive}\n")
        return archive


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[Mirror]:
    served = Mirror(tmp_path / "served")
    yield served
    served.server.shutdown()


@pytest.fixture
def online(monkeypatch: pytest.MonkeyPatch, mirror: Mirror) -> Mirror:
    monkeypatch.setenv("PULUMI_PLUGIN_DOWNLOAD_URL_OVERRIDES", OVERRIDE.format(port=mirror.port))
    monkeypatch.delenv("MEDISYS_OFFLINE", raising=False)
    return mirror


@pytest.fixture(autouse=True)
def no_proxy_for_the_local_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """A CI runner's HTTP proxy must not carry the requests meant for 127.0.0.1."""
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")


# --- where from, as Pulumi decides it -----------------------------------------------------------------


def test_overrides_parse_and_substitute_as_pulumi_does() -> None:
    overrides = upstream.parse_overrides(r"^https://nothing=http://a,github://api.github.com/(?P<org>[^/]+)/pulumi-(\w+)=http://m/${org}/$2")
    assert upstream.override_for("github://api.github.com/pulumi/pulumi-docker", overrides) == "http://m/pulumi/docker"
    # A pattern is searched in the source URL, not matched against the plugin's name (so ^docker$ matches nothing).
    assert upstream.override_for("github://api.github.com/pulumi/pulumi-docker", upstream.parse_overrides("^docker$=http://x")) is None
    with pytest.raises(ValueError, match="PULUMI_PLUGIN_DOWNLOAD_URL_OVERRIDES"):
        upstream.parse_overrides("no-url-here")


def test_without_override_plugins_come_from_the_github_release_then_get_pulumi_com() -> None:
    github, bucket = upstream.plugin_sources("docker", "5.2.0", [])
    assert github.archive_base == "https://github.com/pulumi/pulumi-docker/releases/download/v5.2.0"
    # get.pulumi.com holds archives only: their sums come from the GitHub release.
    assert (bucket.archive_base, bucket.sums_base) == ("https://get.pulumi.com/releases/plugins", github.sums_base)
    assert upstream.plugin_sums("docker", "5.2.0") == "pulumi-docker_5.2.0_checksums.txt"
    assert upstream.plugin_archive("docker", "5.2.0").startswith("pulumi-resource-docker-v5.2.0-linux-")


# --- the decision, through toolchain/upstream.py ------------------------------------------------------


def test_an_archive_whose_published_sum_matches_is_downloaded(online: Mirror, tmp_path: Path) -> None:
    archive = online.publish("docker", "5.2.0")
    ((name, version, kind, path),) = upstream.plugins(tmp_path / "downloads", [("docker", "5.2.0")])
    assert (name, version, kind) == ("docker", "5.2.0", "upstream")
    assert Path(path).read_bytes() == fake_plugin_tarball("docker", "5.2.0")
    assert f"/mirror/docker/v5.2.0/{archive}" in online.requests
    assert "/mirror/docker/v5.2.0/pulumi-docker_5.2.0_checksums.txt" in online.requests


def test_an_archive_with_a_wrong_checksum_is_refused_and_removed(online: Mirror, tmp_path: Path) -> None:
    archive = online.publish("random", "4.21.4", tamper=True)
    ((_, _, kind, reason),) = upstream.plugins(tmp_path / "downloads", [("random", "4.21.4")])
    assert kind == "stand-in"
    assert "checksum mismatch" in reason and archive in reason and "refused" in reason
    assert not (tmp_path / "downloads" / archive).exists()


def test_a_closed_port_decides_offline_at_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again when the block ends: nothing listens there
    monkeypatch.setenv("PULUMI_PLUGIN_DOWNLOAD_URL_OVERRIDES", f"github://=http://127.0.0.1:{port}/x")
    monkeypatch.delenv("MEDISYS_OFFLINE", raising=False)
    started = time.monotonic()
    results = upstream.plugins(tmp_path, list(PROVIDERS.items()))
    assert time.monotonic() - started < 3
    assert {kind for _, _, kind, _ in results} == {"stand-in"}
    assert all(reason.startswith("downloads unreachable: 127.0.0.1") for *_, reason in results)


def test_a_server_that_never_answers_is_given_up_after_the_timeout(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # connections are accepted by the kernel, and never answered
    try:
        monkeypatch.setenv("PULUMI_PLUGIN_DOWNLOAD_URL_OVERRIDES", f"github://=http://127.0.0.1:{silent.getsockname()[1]}/x")
        monkeypatch.setenv("MEDISYS_DOWNLOAD_TIMEOUT", "1")
        monkeypatch.delenv("MEDISYS_OFFLINE", raising=False)
        started = time.monotonic()
        results = upstream.plugins(tmp_path, list(PROVIDERS.items()))
        # One timeout for the host, then it is not tried again for the other three.
        assert time.monotonic() - started < 3
        assert {kind for _, _, kind, _ in results} == {"stand-in"}
    finally:
        silent.close()


def test_offline_switch_tries_nothing(monkeypatch: pytest.MonkeyPatch, mirror: Mirror, tmp_path: Path) -> None:
    mirror.publish("tls", "5.6.2")
    monkeypatch.setenv("PULUMI_PLUGIN_DOWNLOAD_URL_OVERRIDES", OVERRIDE.format(port=mirror.port))
    monkeypatch.setenv("MEDISYS_OFFLINE", "1")
    assert upstream.plugins(tmp_path, [("tls", "5.6.2")]) == [("tls", "5.6.2", "stand-in", "not tried: MEDISYS_OFFLINE is set")]
    assert mirror.requests == []


# --- the whole provider step, with the real pulumi CLI, in a temporary Pulumi home ----------------------


@pytest.fixture(scope="module")
def pulumi_cli() -> str:
    available, reason = toolchain_status()
    if not available:
        pytest.skip(reason)
    cli = shutil.which("pulumi", path=engine_env().get("PATH"))
    if cli is None:
        pytest.skip("no pulumi on the toolchain's PATH (.state/toolchain.env)")
    return cli


def run_providers(cli: str, home: Path, cache: Path, overrides: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PULUMI_HOME": str(home), "PULUMI_CLI": cli, "MEDISYS_CACHE": str(cache),
           "PULUMI_PLUGIN_DOWNLOAD_URL_OVERRIDES": overrides, "PULUMI_SKIP_UPDATE_CHECK": "true", **extra}
    env.pop("MEDISYS_OFFLINE", None)
    return subprocess.run(["bash", str(ROOT / "scripts" / "lib" / "providers.sh"), *(f"{n}={v}" for n, v in PROVIDERS.items())],
                          env=env, capture_output=True, text=True, timeout=180)


def providers_line(done: subprocess.CompletedProcess[str]) -> str:
    (line,) = [line for line in done.stderr.splitlines() if line.startswith("[toolchain] providers: ")]
    return line.removeprefix("[toolchain] providers: ")


def test_setup_installs_the_downloaded_plugins_and_says_so(pulumi_cli: str, mirror: Mirror, tmp_path: Path) -> None:
    for name, version in PROVIDERS.items():
        mirror.publish(name, version)
    done = run_providers(pulumi_cli, tmp_path / "home", tmp_path / "cache", OVERRIDE.format(port=mirror.port))
    assert done.returncode == 0, done.stderr
    assert providers_line(done) == "upstream docker 5.2.0, random 4.21.4, postgresql 3.18.2, tls 5.6.2"
    for name, version in PROVIDERS.items():
        binary = tmp_path / "home" / "plugins" / f"resource-{name}-v{version}" / f"pulumi-resource-{name}"
        assert subprocess.run([str(binary)], capture_output=True, text=True).stdout == f"fake {name} {version}\n"
    # The archives are not kept once installed; a second run uses the installed plugins, offline.
    assert not list((tmp_path / "cache").rglob("*.tar.gz"))
    again = run_providers(pulumi_cli, tmp_path / "home", tmp_path / "cache", OVERRIDE.format(port=mirror.port), MEDISYS_OFFLINE="1")
    assert providers_line(again).startswith("upstream docker 5.2.0, ")
    assert "already installed" in again.stderr


def test_setup_refuses_a_wrong_checksum_and_runs_that_stand_in(pulumi_cli: str, mirror: Mirror, tmp_path: Path) -> None:
    for name, version in PROVIDERS.items():
        mirror.publish(name, version, tamper=name == "postgresql")
    done = run_providers(pulumi_cli, tmp_path / "home", tmp_path / "cache", OVERRIDE.format(port=mirror.port))
    assert done.returncode == 0, done.stderr
    line = providers_line(done)
    assert line.startswith("upstream docker 5.2.0, random 4.21.4, tls 5.6.2; stand-ins postgresql 3.18.2 (checksum mismatch for ")
    assert line.endswith(": refused)")
    wrapper = tmp_path / "home" / "plugins" / "resource-postgresql-v3.18.2" / "pulumi-resource-postgresql"
    assert "toolchain/plugin.py" in wrapper.read_text()


def test_setup_offline_decides_within_seconds_on_the_stand_ins(pulumi_cli: str, tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    done = run_providers(pulumi_cli, tmp_path / "home", tmp_path / "cache", f"github://=http://127.0.0.1:{port}/x")
    assert done.returncode == 0, done.stderr
    line = providers_line(done)
    assert line.startswith("stand-ins docker 5.2.0, random 4.21.4, postgresql 3.18.2, tls 5.6.2 (downloads unreachable: 127.0.0.1")
    download = [x for x in done.stderr.splitlines() if "download attempt:" in x]
    assert download and float(download[0].split(": ")[1].rstrip("s)")) < 3, done.stderr
    assert time.monotonic() - started < 60


def test_cli_archive_is_taken_only_with_its_published_sum(monkeypatch: pytest.MonkeyPatch, mirror: Mirror, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    version = "3.276.0"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo("pulumi/pulumi")
        info.size, info.mode = 2, 0o755
        archive.addfile(info, io.BytesIO(b"#!"))
    release = mirror.directory / "sdk"
    release.mkdir(parents=True)
    name = upstream.cli_archive(version)
    (release / name).write_bytes(buffer.getvalue())
    monkeypatch.setenv("MEDISYS_PULUMI_RELEASES_URL", f"http://127.0.0.1:{mirror.port}/sdk")
    monkeypatch.delenv("MEDISYS_OFFLINE", raising=False)
    sums = release / f"pulumi-{version}-checksums.txt"
    sums.write_text(f"{hashlib.sha256(buffer.getvalue()).hexdigest()}  {name}\n")
    assert upstream.main(["cli", str(tmp_path / "a"), version]) == 0
    assert Path(capsys.readouterr().out.strip()).read_bytes() == buffer.getvalue()
    assert f"/sdk/{name}" in mirror.requests and name.startswith(f"pulumi-v{version}-linux-")
    sums.write_text(f"{'1' * 64}  {name}\n")
    assert upstream.main(["cli", str(tmp_path / "b"), version]) == 1
    assert "checksum mismatch" in capsys.readouterr().err
    assert not (tmp_path / "b" / name).exists()
