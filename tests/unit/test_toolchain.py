"""The project's language host and stand-in providers, through their gRPC interface (no Docker:
the random and tls providers compute everything themselves)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from google.protobuf import empty_pb2
from pulumi.runtime.proto import language_pb2, provider_pb2, provider_pb2_grpc

from tests.support.plugins import struct, urn
from toolchain.language_host import LanguageHost, virtualenv_python
from toolchain.providers.base import SIGNATURE, UNKNOWN, to_dict
from toolchain.providers import docker_engine
from toolchain.providers.docker import Container, Network
from toolchain.providers.docker_engine import container_create_args
from toolchain.providers.postgres_sql import removal_for, statement_for

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def plugin():
    """Starts a stand-in provider as the engine does; yields a stub factory per provider name."""
    processes, stubs = [], {}

    def start(name: str, version: str = "1.0.0"):
        if name not in stubs:
            process = subprocess.Popen([sys.executable, str(ROOT / "toolchain" / "plugin.py"), "resource", name, version, "127.0.0.1:1"],
                                       stdout=subprocess.PIPE, text=True)
            processes.append(process)
            port = int(process.stdout.readline())
            stubs[name] = provider_pb2_grpc.ResourceProviderStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
        return stubs[name]

    yield start
    for process in processes:
        process.terminate()
        process.wait(timeout=10)


def test_plugin_reports_the_version_it_was_installed_as(plugin):
    assert plugin("random", "4.21.4").GetPluginInfo(empty_pb2.Empty()).version == "4.21.4"


def test_random_password_honours_length_and_classes_and_is_unknown_in_preview(plugin):
    stub = plugin("random")
    token = "random:index/randomPassword:RandomPassword"
    inputs = struct({"length": 40, "special": False})
    preview = to_dict(stub.Create(provider_pb2.CreateRequest(urn=urn(token), properties=inputs, preview=True)).properties)
    assert preview["result"] == UNKNOWN
    created = stub.Create(provider_pb2.CreateRequest(urn=urn(token), properties=inputs))
    password = to_dict(created.properties)["result"]
    assert len(password) == 40 and password.isalnum() and password not in created.id


def test_tls_chain_signed_by_the_stand_in_verifies(plugin):
    stub = plugin("tls")

    def create(token: str, inputs: dict) -> dict:
        return to_dict(stub.Create(provider_pb2.CreateRequest(urn=urn(f"tls:index/{token}"), properties=struct(inputs))).properties)

    ca_key = create("privateKey:PrivateKey", {"algorithm": "ECDSA", "ecdsaCurve": "P256"})["privateKeyPem"]
    ca = create("selfSignedCert:SelfSignedCert", {"privateKeyPem": ca_key, "isCaCertificate": True, "validityPeriodHours": 24,
                                                  "subject": {"commonName": "ca"}, "allowedUses": ["cert_signing"]})["certPem"]
    key = create("privateKey:PrivateKey", {"algorithm": "ECDSA", "ecdsaCurve": "P256"})["privateKeyPem"]
    csr = create("certRequest:CertRequest", {"privateKeyPem": key, "subject": {"commonName": "db"}, "dnsNames": ["db"],
                                              "ipAddresses": ["10.0.2.10"]})["certRequestPem"]
    leaf = create("locallySignedCert:LocallySignedCert", {"certRequestPem": csr, "caCertPem": ca, "caPrivateKeyPem": ca_key,
                                                          "validityPeriodHours": 24, "allowedUses": ["server_auth"]})["certPem"]
    cert = x509.load_pem_x509_certificate(leaf.encode())
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(ca.encode()))
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["db"]


def test_check_refuses_keys_upstream_refuses(plugin):
    response = plugin("tls").Check(provider_pb2.CheckRequest(urn=urn("tls:index/privateKey:PrivateKey"),
                                                             news=struct({"algorithm": "DSA"})))
    assert [f.property for f in response.failures] == ["algorithm"]


def test_unknown_types_are_refused_with_the_list_of_covered_ones(plugin):
    with pytest.raises(grpc.RpcError) as raised:
        plugin("random").Create(provider_pb2.CreateRequest(urn=urn("random:index/randomBytes:RandomBytes"), properties=struct({})))
    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "random:index/randomPassword:RandomPassword" in raised.value.details()


def test_diff_replaces_on_container_changes_and_updates_provider_settings(plugin):
    stub = plugin("docker")
    token = "docker:index/container:Container"
    old = {"name": "a", "image": "medisys/app:1", "wait": True, "waitTimeout": 60}

    def diff(new: dict, ignore: list[str] = ()) -> provider_pb2.DiffResponse:
        return stub.Diff(provider_pb2.DiffRequest(urn=urn(token), id="x", olds=struct(old), old_inputs=struct(old),
                                                  news=struct(new), ignoreChanges=list(ignore)))

    image = diff({**old, "image": "medisys/app:2"})
    assert image.changes == provider_pb2.DiffResponse.DIFF_SOME and list(image.replaces) == ["image"]
    timeout = diff({**old, "waitTimeout": 120})
    assert list(timeout.diffs) == ["waitTimeout"] and list(timeout.replaces) == []
    assert diff(dict(old)).changes == provider_pb2.DiffResponse.DIFF_NONE
    assert diff({**old, "image": "medisys/app:2"}, ignore=["image"]).changes == provider_pb2.DiffResponse.DIFF_NONE


def test_provider_config_secrets_and_numbers_arrive_plain():
    values = to_dict(struct({"password": {SIGNATURE: "1b47061264138c4ac30d75fd1eb44270", "value": "s3cret"}, "port": 5432}))
    assert values == {"password": "s3cret", "port": 5432} and isinstance(values["port"], int)


def test_an_attachment_without_an_address_lets_the_engine_pick_one_as_upstream():
    _, failures = Container().check({"name": "a", "image": "i", "networksAdvanced": [{"name": "n"}]})
    assert failures == []
    args = container_create_args({"name": "a", "image": "i", "networksAdvanced": [{"name": "n"}]})
    assert "--network" in args and "--ip" not in args


def test_a_network_input_the_stand_in_cannot_honour_is_refused_not_ignored():
    _, failures = Network().check({"name": "n", "driver": "overlay", "attachable": True, "ipv6": True})
    assert [p for p, _ in failures] == ["ipv6"]


def test_an_attachable_encrypted_overlay_is_created_as_asked(monkeypatch):
    calls = []
    monkeypatch.setattr(docker_engine, "docker", lambda *args, **kw: calls.append(args) or "")
    docker_engine.create_network({"name": "n", "driver": "overlay", "attachable": True, "options": {"encrypted": ""},
                                  "ipamConfigs": [{"subnet": "10.0.2.0/24"}]})
    assert calls == [("network", "create", "--driver", "overlay", "--attachable", "--opt", "encrypted", "--subnet", "10.0.2.0/24", "n")]


def test_schema_removal_cascades_only_when_asked():
    schema = {"name": "app", "database": "medisys", "owner": "medisys_app"}
    assert removal_for("postgresql:index/schema:Schema", schema)[1] == 'DROP SCHEMA IF EXISTS "app";'
    assert removal_for("postgresql:index/schema:Schema", {**schema, "dropCascade": True})[1].endswith(" CASCADE;")


def test_role_password_is_a_quoted_literal():
    _, sql = statement_for("postgresql:index/role:Role", {"name": "r", "login": True, "password": "it's"})
    assert "PASSWORD 'it''s'" in sql


def test_language_host_uses_the_virtualenv_named_in_pulumi_yaml(tmp_path):
    info = language_pb2.ProgramInfo(root_directory=str(tmp_path), program_directory=str(tmp_path), entry_point=".")
    info.options.update({"virtualenv": "venv"})
    assert virtualenv_python(info) == str(tmp_path / "venv" / "bin" / "python")


def test_postgresql_statements_never_run_concurrently(monkeypatch):
    """Parallel GRANTs on one database race on its ACL: the stand-in runs one psql at a time."""
    import threading
    import time as clock

    from toolchain.providers import postgresql

    running, peak, guard = [0], [0], threading.Lock()

    def fake_psql(*args, **kwargs):
        with guard:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        clock.sleep(0.05)
        with guard:
            running[0] -= 1
        return subprocess.CompletedProcess(args, 0, "", "")

    monkeypatch.setattr(postgresql.subprocess, "run", fake_psql)
    config = {"host": "10.0.2.10", "username": "postgres", "password": "p"}
    threads = [threading.Thread(target=postgresql.run_sql, args=(config, "medisys", "GRANT ...")) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert peak[0] == 1


def test_language_host_reports_the_cli_version_it_was_installed_beside():
    assert LanguageHost("3.276.0", "127.0.0.1:1", "shim").GetPluginInfo(empty_pb2.Empty(), None).version == "3.276.0"
