"""The stand-in docker provider sends each resource's commands to the engine its provider names, as
upstream connects (terraform-provider-docker v4.5.0, internal/provider/config.go MakeClient, behind
pulumi-docker 5.2.0): `host` (default DOCKER_HOST, else the local socket), PEM materials as TLS
files in a private directory, certPath, ssh:// with sshOpts, plain text for a bare tcp:// host.
No Docker engine: the TLS check talks to a TLS listener of the test's own on 127.0.0.1."""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import shutil
import socket
import ssl
import stat
import subprocess
import threading
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pulumi.runtime.proto import provider_pb2

from tests.support.plugins import plugin_stubs, struct
from toolchain.providers import docker as docker_provider
from toolchain.providers import docker_engine, docker_host
from toolchain.providers.base import SIGNATURE, ProviderConfig, ProviderError
from toolchain.providers.docker import Container, Network
from toolchain.providers.docker_engine import DEFAULT_ENGINE, DockerError
from toolchain.providers.docker_host import build_engine, check_config, context_host, engine_for

HOST = "tcp://10.99.0.12:2376"
SECRET = "1b47061264138c4ac30d75fd1eb44270"  # the wire marker of a secret value
PROVIDER_URN = "urn:pulumi:dev::medisys-platform::pulumi:providers:docker::docker-host-2"


def pem(kind: str, body: str) -> str:
    return f"-----BEGIN {kind}-----\n{body}\n-----END {kind}-----\n"


CA, CERT, KEY = pem("CERTIFICATE", "Y2E="), pem("CERTIFICATE", "Y2VydA=="), pem("EC PRIVATE KEY", "a2V5")


@pytest.fixture
def private_dir(tmp_path, monkeypatch):
    """The provider's private directory goes under tmp_path; removed after, as at plugin exit."""
    monkeypatch.setattr(docker_host, "RUNTIME_DIR", str(tmp_path))
    monkeypatch.setattr(docker_host, "_root", None)
    monkeypatch.setattr(docker_host, "_engines", {})
    yield tmp_path
    docker_host.remove_private_directory()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- which engine, with which CLI options -------------------------------------------------------------


@pytest.mark.parametrize("config", [{}, {"disableDockerDaemonCheck": True}, {"host": ""}])
def test_a_provider_without_connection_settings_keeps_the_ambient_engine(config, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///tmp/elsewhere.sock")
    engine = build_engine(config, "default_5_2_0")
    assert engine is DEFAULT_ENGINE
    assert engine.argv("network", "ls") == ["docker", "network", "ls"]
    assert engine.environment() is None  # the CLI reads DOCKER_HOST itself, as before
    assert engine.describe("docker network ls ... failed: x") == "docker network ls ... failed: x"


def test_pem_materials_become_private_files_and_tls_options(private_dir, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///tmp/ambient.sock")
    monkeypatch.setenv("DOCKER_TLS_VERIFY", "1")
    engine = build_engine({"host": HOST, "caMaterial": CA, "certMaterial": CERT, "keyMaterial": KEY}, "docker-host-2", environ={})
    directory = Path(engine.flags[engine.flags.index("--tlscacert") + 1]).parent
    assert engine.flags == ("-H", HOST, "--tlsverify", "--tlscacert", str(directory / "ca.pem"),
                            "--tlscert", str(directory / "cert.pem"), "--tlskey", str(directory / "key.pem"))
    assert [(directory / n).read_text() for n in ("ca.pem", "cert.pem", "key.pem")] == [CA, CERT, KEY]
    assert {n: mode(directory / n) for n in ("ca.pem", "cert.pem", "key.pem")} == {"ca.pem": 0o600, "cert.pem": 0o600, "key.pem": 0o600}
    assert mode(directory) == 0o700 and mode(directory.parent) == 0o700
    assert directory.parent.parent == private_dir and directory.parent.name.startswith(f"medisys-docker-tls-{os.getpid()}-")
    # The CLI decides nothing from the ambient environment: -H and the flags do.
    env = engine.environment()
    assert "DOCKER_HOST" not in env and "DOCKER_TLS_VERIFY" not in env and env["DOCKER_CERT_PATH"] == str(directory)
    assert engine.argv("ps") == ["docker", *engine.flags, "ps"]
    # Never the material itself in what gets printed or logged.
    assert not any(secret in repr(engine) for secret in ("Y2E=", "Y2VydA==", "a2V5"))
    docker_host.remove_private_directory()
    assert not directory.exists()


def test_client_material_without_a_ca_is_tls_without_verifying_the_server(private_dir):
    """Upstream: no CA -> InsecureSkipVerify. The CLI insists on reading a CA file: it gets the client cert."""
    engine = build_engine({"host": HOST, "certMaterial": CERT, "keyMaterial": KEY}, "p", environ={})
    flags = list(engine.flags)
    assert "--tlsverify" not in flags and "--tls" in flags
    assert flags[flags.index("--tlscacert") + 1] == flags[flags.index("--tlscert") + 1]
    assert not (Path(flags[flags.index("--tlscert") + 1]).parent / "ca.pem").exists()


@pytest.mark.parametrize("config, environ, cause", [
    ({"host": HOST, "certMaterial": CERT}, {}, "cert_material, and key_material must be specified"),
    ({"host": HOST, "keyMaterial": KEY}, {}, "cert_material, and key_material must be specified"),
    ({"host": HOST, "certMaterial": CERT, "keyMaterial": KEY, "certPath": "/etc/docker-client"}, {}, "cert_path must not be specified"),
    # certPath's default is DOCKER_CERT_PATH: upstream refuses that together with materials too.
    ({"host": HOST, "certMaterial": CERT, "keyMaterial": KEY}, {"DOCKER_CERT_PATH": "/etc/x"}, "cert_path must not be specified"),
])
def test_material_combinations_upstream_refuses_name_the_host(private_dir, config, environ, cause):
    with pytest.raises(ProviderError) as error:
        build_engine(config, "docker-host-2", environ=environ)
    assert str(error.value).startswith(f"docker engine {HOST} (provider docker-host-2): {cause}")
    assert "Y2VydA==" not in str(error.value) and "a2V5" not in str(error.value)


def test_cert_path_verifies_with_the_three_files_of_the_directory():
    engine = build_engine({"host": HOST, "certPath": "/etc/medisys/docker-client"}, "p", environ={})
    assert engine.flags == ("-H", HOST, "--tlsverify", "--tlscacert", "/etc/medisys/docker-client/ca.pem",
                            "--tlscert", "/etc/medisys/docker-client/cert.pem", "--tlskey", "/etc/medisys/docker-client/key.pem")
    assert "DOCKER_CERT_PATH" not in engine.environment()


def test_cert_path_defaults_to_docker_cert_path():
    engine = build_engine({"host": HOST}, "p", environ={"DOCKER_CERT_PATH": "/ci/certs"})
    assert engine.flags[2:4] == ("--tlsverify", "--tlscacert") and engine.flags[4] == "/ci/certs/ca.pem"


def test_a_bare_tcp_host_is_plain_text_as_upstream_connects(monkeypatch):
    """No TLS material: upstream talks plain HTTP to the host (the program and the policy pack refuse
    that; the provider does not), and the ambient DOCKER_TLS_VERIFY does not turn TLS on."""
    monkeypatch.setenv("DOCKER_TLS_VERIFY", "1")
    monkeypatch.setenv("DOCKER_CERT_PATH", "/somewhere")
    engine = build_engine({"host": HOST}, "p", environ={})
    assert engine.flags == ("-H", HOST)
    env = engine.environment()
    assert not {"DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_HOST", "DOCKER_TLS", "DOCKER_CONTEXT"} & set(env)


@pytest.mark.parametrize("environ, host", [
    ({}, "unix:///var/run/docker.sock"),
    ({"DOCKER_HOST": "tcp://10.99.0.11:2376"}, "tcp://10.99.0.11:2376"),
])
def test_host_defaults_to_docker_host_then_the_local_socket(private_dir, environ, host):
    engine = build_engine({"certMaterial": CERT, "keyMaterial": KEY, "caMaterial": CA}, "p", environ=environ)
    assert engine.flags[:2] == ("-H", host) and engine.host == host


def test_an_ssh_host_goes_to_the_cli_which_speaks_ssh_itself():
    engine = build_engine({"host": "ssh://deploy@10.99.0.13"}, "p", environ={})
    assert engine.flags == ("-H", "ssh://deploy@10.99.0.13")
    assert "PATH" not in dict(engine.env)


def test_ssh_opts_come_before_the_clis_own_ssh_arguments(private_dir, tmp_path, monkeypatch):
    """The CLI runs `ssh` from PATH; the provider's wrapper adds sshOpts first, as upstream's
    connhelper.GetConnectionHelperWithSSHOpts does."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "ssh").write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')
    (bin_dir / "ssh").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    opts = ["-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile=/etc/medisys/known hosts", "-i", "/k"]
    engine = build_engine({"host": "ssh://deploy@10.99.0.13:2222", "sshOpts": json.dumps(opts)}, "p", environ={})
    assert engine.flags == ("-H", "ssh://deploy@10.99.0.13:2222")
    wrapper = Path(dict(engine.env)["PATH"].split(os.pathsep)[0]) / "ssh"
    assert mode(wrapper) == 0o700
    ran = subprocess.run(["ssh", "-o", "ConnectTimeout=30", "-T", "-l", "deploy", "-p", "2222", "--", "10.99.0.13",
                          "docker", "system", "dial-stdio"], env=engine.environment(), capture_output=True, text=True, check=True)
    assert ran.stdout.splitlines() == [*opts, "-o", "ConnectTimeout=30", "-T", "-l", "deploy", "-p", "2222", "--", "10.99.0.13",
                                       "docker", "system", "dial-stdio"]


def test_docker_ssh_opts_is_the_default_of_ssh_opts(private_dir, tmp_path, monkeypatch):
    (tmp_path / "ssh").write_text("#!/bin/sh\n")
    (tmp_path / "ssh").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    engine = build_engine({"host": "ssh://deploy@h"}, "p", environ={"DOCKER_SSH_OPTS": "-o  BatchMode=yes"})
    wrapper = Path(dict(engine.env)["PATH"].split(os.pathsep)[0]) / "ssh"
    assert wrapper.read_text() == f'#!/bin/sh\nexec {tmp_path}/ssh -o BatchMode=yes "$@"\n'


def test_a_context_overrides_host_with_its_docker_endpoint(tmp_path):
    meta = tmp_path / ".docker" / "contexts" / "meta" / "0123abcd"
    meta.mkdir(parents=True)
    (meta / "meta.json").write_text(json.dumps({"Name": "host-2", "Endpoints": {"docker": {"Host": HOST}}}))
    assert context_host("host-2", str(tmp_path)) == HOST
    with pytest.raises(ValueError, match="context 'other' not found"):
        context_host("other", str(tmp_path))


def test_the_engine_is_built_once_per_configuration_and_names_its_provider(private_dir):
    config = ProviderConfig(host=HOST, caMaterial=CA, certMaterial=CERT, keyMaterial=KEY)
    config.provider_name = "docker-host-2"
    assert engine_for(config) is engine_for(config)
    assert engine_for(config).provider == "docker-host-2"
    assert engine_for({}) is DEFAULT_ENGINE


# --- every command of a resource goes there; errors name the host ------------------------------------------


def test_every_cli_call_of_a_container_goes_to_its_providers_engine(private_dir, monkeypatch):
    config = ProviderConfig(host=HOST, caMaterial=CA, certMaterial=CERT, keyMaterial=KEY)
    config.provider_name = "docker-host-2"
    engine = engine_for(config)
    calls: list[tuple[tuple[str, ...], object]] = []
    created = {"done": False}

    def fake(*args, engine=DEFAULT_ENGINE, **kw):
        calls.append((args, engine))
        if args[:2] == ("container", "inspect"):
            return json.dumps({"Id": "c1", "State": {"ExitCode": 0}}) if created["done"] else ""
        if args[0] == "start":
            created["done"] = True
        return ""

    monkeypatch.setattr(docker_provider, "docker", fake)
    monkeypatch.setattr(docker_engine, "docker", fake)
    inputs = Container().check({"name": "medisys-app-1", "image": "medisys/app:1",
                                "networksAdvanced": [{"name": "a", "ipv4Address": "10.0.0.2"}, {"name": "b", "ipv4Address": "10.0.1.2"}],
                                "uploads": [{"file": "/etc/x", "content": "y"}]})[0]
    assert Container().create(inputs, config)[0] == "c1"
    Container().update("c1", inputs, {**inputs, "memory": 64}, config)
    Container().delete("c1", {**inputs, "destroyGraceSeconds": 5}, config)
    commands = [args[0] if args[0] not in ("container", "network") else " ".join(args[:2]) for args, _ in calls]
    assert commands == ["container inspect", "create", "network connect", "cp", "start", "container inspect", "update", "stop", "rm"]
    assert all(used is engine for _, used in calls)


def test_a_docker_failure_names_the_engine_and_the_provider(private_dir):
    """The real docker CLI against a loopback port nobody listens on."""
    if shutil.which("docker") is None:
        pytest.skip("no docker CLI")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = ProviderConfig(host=f"tcp://127.0.0.1:{port}")
    config.provider_name = "docker-host-2"
    with pytest.raises(DockerError) as error:
        Network().create({"name": "medisys-standin-unit-net", "driver": "bridge"}, config)
    assert str(error.value).startswith(f"docker engine tcp://127.0.0.1:{port} (provider docker-host-2): docker network create")
    # An engine that cannot be reached is an error on refresh, never "the container is gone".
    with pytest.raises(DockerError, match=f"docker engine tcp://127.0.0.1:{port}"):
        Container().read("medisys-standin-unit-c", {"name": "medisys-standin-unit-c"}, config)


# --- TLS for real, against a listener of the test's own -------------------------------------------------


def _pki():
    def key():
        return ec.generate_private_key(ec.SECP256R1())

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def cert(subject, subject_key, issuer, issuer_key, *, ca=False, san=None, usage=None):
        now = datetime.datetime.now(datetime.timezone.utc)
        builder = (x509.CertificateBuilder().subject_name(name(subject)).issuer_name(name(issuer))
                   .public_key(subject_key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(hours=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        if usage:
            builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    def pem_of(obj):
        if isinstance(obj, x509.Certificate):
            return obj.public_bytes(serialization.Encoding.PEM).decode()
        return obj.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                 serialization.NoEncryption()).decode()

    ca_key, other_key, server_key, client_key = key(), key(), key(), key()
    ca = cert("medisys-test-ca", ca_key, "medisys-test-ca", ca_key, ca=True)
    other_ca = cert("other-ca", other_key, "other-ca", other_key, ca=True)
    server = cert("host-2", server_key, "medisys-test-ca", ca_key, san=[x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
                  usage=ExtendedKeyUsageOID.SERVER_AUTH)
    client = cert("medisys-client", client_key, "medisys-test-ca", ca_key, usage=ExtendedKeyUsageOID.CLIENT_AUTH)
    return {"ca": pem_of(ca), "other_ca": pem_of(other_ca), "server": pem_of(server), "server_key": pem_of(server_key),
            "client": pem_of(client), "client_key": pem_of(client_key)}


@pytest.fixture(scope="module")
def tls_listener(tmp_path_factory):
    """A TLS listener on 127.0.0.1 that requires a client certificate from the test CA and records
    the client's name; it answers every request with HTTP 500."""
    pki = _pki()
    directory = tmp_path_factory.mktemp("tls")
    for key in ("ca", "server", "server_key"):
        (directory / f"{key}.pem").write_text(pki[key])
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(directory / "server.pem", directory / "server_key.pem")
    context.load_verify_locations(directory / "ca.pem")
    context.verify_mode = ssl.CERT_REQUIRED
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.5)
    seen: list[str] = []
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            try:
                conn.settimeout(5)
                with context.wrap_socket(conn, server_side=True) as tls:
                    subject = dict(item[0] for item in tls.getpeercert()["subject"])
                    seen.append(subject["commonName"])
                    tls.recv(65536)
                    tls.sendall(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            except (OSError, ssl.SSLError):
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"tcp://127.0.0.1:{listener.getsockname()[1]}", pki, seen
    stop.set()
    thread.join(5)
    listener.close()


@pytest.mark.parametrize("ca_key, reaches", [("ca", True), (None, True), ("other_ca", False)])
def test_the_materials_reach_the_tls_handshake(private_dir, tls_listener, ca_key, reaches):
    """The right CA: verified and the client certificate presented. No CA: not verified (upstream's
    InsecureSkipVerify), still presented. Another CA: the CLI refuses the server."""
    if shutil.which("docker") is None:
        pytest.skip("no docker CLI")
    host, pki, seen = tls_listener
    seen.clear()
    config = {"host": host, "certMaterial": pki["client"], "keyMaterial": pki["client_key"],
              **({"caMaterial": pki[ca_key]} if ca_key else {})}
    engine = build_engine(config, "docker-host-2", environ={})
    with pytest.raises(DockerError) as error:
        docker_engine.docker("version", "--format", "{{.Server.Version}}", engine=engine, timeout=60)
    message = str(error.value)
    assert message.startswith(f"docker engine {host} (provider docker-host-2): docker version")
    assert pki["client_key"].splitlines()[1] not in message
    if reaches:
        assert "medisys-client" in seen, message
    else:
        assert "medisys-client" not in seen
        assert "certificate" in message, message


# --- the provider resource: CheckConfig, DiffConfig, Configure over gRPC ---------------------------------


@pytest.fixture
def fresh_plugin():
    stubs = plugin_stubs()
    yield next(stubs)("docker")
    next(stubs, None)


def test_configure_takes_explicit_provider_arguments_with_secrets_unwrapped(fresh_plugin):
    """The engine sends an explicit provider's inputs as `args`, secrets still wrapped; errors then
    name the configured host and the provider resource."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    host = f"tcp://127.0.0.1:{port}"
    fresh_plugin.Configure(provider_pb2.ConfigureRequest(
        urn=PROVIDER_URN, name="docker-host-2", type="pulumi:providers:docker",
        variables={"docker:config:host": host},
        args=struct({"host": host, "keyMaterial": {SIGNATURE: SECRET, "value": KEY}, "certMaterial": CERT, "caMaterial": CA})))
    with pytest.raises(grpc.RpcError) as error:
        fresh_plugin.Create(provider_pb2.CreateRequest(
            urn="urn:pulumi:dev::medisys-platform::docker:index/network:Network::n",
            properties=struct({"name": "medisys-standin-unit-net", "driver": "bridge"})))
    assert f"docker engine {host} (provider docker-host-2): docker network create" in error.value.details()


def test_check_config_accepts_upstreams_keys_and_refuses_others():
    good = {"host": HOST, "caMaterial": CA, "certMaterial": CERT, "keyMaterial": KEY, "certPath": "", "context": "",
            "sshOpts": ["-o", "BatchMode=yes"], "disableDockerDaemonCheck": True, "version": "5.2.0"}
    assert check_config(PROVIDER_URN, good) == []
    assert check_config("urn:pulumi:dev::p::pulumi:providers:docker::default_5_2_0", {"sshOpts": '["-o","x"]'}) == []
    [(_, reason)] = check_config(PROVIDER_URN, {"host": HOST, "cert_material": CERT})
    assert reason == "could not validate provider configuration: Invalid or unknown key. Examine values at 'docker-host-2.cert_material'."
    [(_, reason)] = check_config("urn:pulumi:dev::p::pulumi:providers:docker::default_5_2_0", {"hots": HOST})
    assert reason.startswith("`docker:hots` is not a valid configuration key for the docker provider.")
    [(_, reason)] = check_config(PROVIDER_URN, {"registryAuth": [{"address": "r"}]})
    assert "does not implement registryAuth" in reason
    assert len(check_config(PROVIDER_URN, {"sshOpts": "-o x"})) == 1


def test_check_config_over_grpc_returns_the_inputs_it_was_given(fresh_plugin):
    news = struct({"host": HOST, "keyMaterial": {SIGNATURE: SECRET, "value": KEY}})
    response = fresh_plugin.CheckConfig(provider_pb2.CheckRequest(urn=PROVIDER_URN, news=news))
    assert list(response.failures) == [] and response.inputs == news


def test_a_changed_host_updates_the_provider_in_place_as_upstreams_bridge_reports_it(fresh_plugin):
    """pulumi-terraform-bridge's DiffConfig replaces a provider only for keys marked
    ForcesProviderReplace, and pulumi-docker marks none: a new `host` is an update of the provider,
    and the engine (v3.276 providerChanged) then replaces none of the resources on it."""
    old = {"host": "tcp://10.99.0.11:2376", "caMaterial": CA}
    response = fresh_plugin.DiffConfig(provider_pb2.DiffRequest(
        urn=PROVIDER_URN, id="x", olds=struct(old), old_inputs=struct(old), news=struct({**old, "host": HOST})))
    assert response.changes == provider_pb2.DiffResponse.DIFF_SOME
    assert (list(response.diffs), list(response.replaces)) == (["host"], [])
    same = fresh_plugin.DiffConfig(provider_pb2.DiffRequest(urn=PROVIDER_URN, id="x", olds=struct(old), old_inputs=struct(old),
                                                            news=struct(old)))
    assert same.changes == provider_pb2.DiffResponse.DIFF_NONE
