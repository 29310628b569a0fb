"""HTTPS on the app server: TLS 1.2+ with the internal CA's certificate, the handshake off the accept
loop, drain semantics unchanged, and a clear refusal of half a certificate/key pair."""

import datetime
import http.client
import ipaddress
import os
import socket
import ssl
import subprocess
import sys
import threading
import time

import pytest

from medisys_app.server import App, Server, TLSConfigError, run, tls_context
from medisys_app.settings import SettingsError, from_env

from test_server import FakeCache, FakeDB

x509 = pytest.importorskip("cryptography.x509")
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

APP_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _name(common_name):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def issue(directory, prefix, dns_names=("app", "medisys-dev-app-1"), ips=("127.0.0.1",)):
    """A CA and a server certificate it signed (ECDSA P-256, as components/pki.py issues them)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name(f"{prefix} CA")).issuer_name(_name(f"{prefix} CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=1)).not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.DNSName(n) for n in dns_names] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    cert = (x509.CertificateBuilder().subject_name(_name(dns_names[0])).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = {}
    for name, text in (("ca.crt", ca.public_bytes(serialization.Encoding.PEM).decode()),
                       ("server.crt", cert.public_bytes(serialization.Encoding.PEM).decode()),
                       ("server.key", _pem(key))):
        paths[name] = str(directory / f"{prefix}-{name}")
        with open(paths[name], "w") as handle:
            handle.write(text)
    return paths


@pytest.fixture
def pki(tmp_path):
    return issue(tmp_path, "internal")


@pytest.fixture
def app():
    return App("dev-app-1", FakeDB(), FakeCache())


@pytest.fixture
def server(app, pki):
    server = Server(("127.0.0.1", 0), app, tls_context(pki["server.crt"], pki["server.key"]))
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def client_context(ca_file, **versions):
    context = ssl.create_default_context(cafile=ca_file)
    for attribute, version in versions.items():
        setattr(context, attribute, version)
    return context


def get(port, path, context, server_hostname="app"):
    """GET over HTTPS to 127.0.0.1, verifying the certificate for `server_hostname` (HAProxy's verifyhost)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname=server_hostname) as tls:
            tls.sendall(f"GET {path} HTTP/1.1\r\nHost: {server_hostname}\r\nConnection: close\r\n\r\n".encode())
            response = http.client.HTTPResponse(tls)
            response.begin()
            return response.status, response.read(), tls.version()


def test_serves_https_verified_against_the_internal_ca_for_the_service_name(server, pki):
    status, body, _ = get(server.server_address[1], "/health", client_context(pki["ca.crt"]))
    assert status == 200 and b'"status": "ok"' in body
    assert server.scheme == "https"


def test_a_client_trusting_another_ca_refuses_the_server(server, tmp_path):
    other = issue(tmp_path, "other")
    with pytest.raises(ssl.SSLCertVerificationError):
        get(server.server_address[1], "/health", client_context(other["ca.crt"]))


def test_a_name_not_in_the_certificate_is_refused(server, pki):
    with pytest.raises(ssl.SSLCertVerificationError):
        get(server.server_address[1], "/health", client_context(pki["ca.crt"]), server_hostname="db")


def test_tls_1_2_and_1_3_are_accepted(server, pki):
    port = server.server_address[1]
    v12 = client_context(pki["ca.crt"], maximum_version=ssl.TLSVersion.TLSv1_2)
    v13 = client_context(pki["ca.crt"], minimum_version=ssl.TLSVersion.TLSv1_3)
    assert get(port, "/health", v12)[2] == "TLSv1.2"
    assert get(port, "/health", v13)[2] == "TLSv1.3"


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
def test_tls_1_1_is_refused(server, pki):
    context = client_context(pki["ca.crt"], minimum_version=ssl.TLSVersion.TLSv1, maximum_version=ssl.TLSVersion.TLSv1_1)
    context.set_ciphers("DEFAULT:@SECLEVEL=0")  # let this client offer TLS 1.1 at all: the refusal is the server's
    with pytest.raises(ssl.SSLError):
        get(server.server_address[1], "/health", context)


def test_plain_http_on_the_https_port_gets_no_answer_and_the_server_keeps_serving(server, pki):
    port = server.server_address[1]
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        raw.sendall(b"GET /health HTTP/1.0\r\n\r\n")
        try:
            answer = raw.recv(1024)
        except ConnectionResetError:  # the server closed on a connection that did not speak TLS
            answer = b""
    assert b"HTTP/" not in answer  # a TLS alert or nothing, never a plain-text response
    assert get(port, "/health", client_context(pki["ca.crt"]))[0] == 200


def test_a_client_stuck_in_its_handshake_does_not_hold_up_the_others(server, pki):
    port = server.server_address[1]
    with socket.create_connection(("127.0.0.1", port), timeout=5):  # connects, never says hello
        started = time.monotonic()
        assert get(port, "/health", client_context(pki["ca.crt"]))[0] == 200
        assert time.monotonic() - started < 2


def test_drain_over_https_answers_503_on_health_and_finishes_in_flight_requests(app, pki):
    release, entered = threading.Event(), threading.Event()

    def slow_read(note_id):
        entered.set()
        release.wait(5)
        return "late", "primary"

    app.db.read_note = slow_read
    server = Server(("127.0.0.1", 0), app, tls_context(pki["server.crt"], pki["server.key"]))
    port, stop, context = server.server_address[1], threading.Event(), client_context(pki["ca.crt"])
    runner = threading.Thread(target=run, args=(server, app, stop, 1.5))
    runner.start()
    result = {}
    worker = threading.Thread(target=lambda: result.setdefault("status", get(port, "/api/notes/9", context)[0]))
    worker.start()
    assert entered.wait(5)
    stop.set()
    assert app.draining.wait(3)
    assert get(port, "/health", context)[0] == 503  # draining, still serving over TLS
    release.set()
    runner.join(10)
    worker.join(10)
    assert not runner.is_alive() and result["status"] == 200
    with pytest.raises(OSError):
        get(port, "/health", context)


def test_a_key_that_does_not_match_the_certificate_is_a_configuration_error(pki, tmp_path):
    other = issue(tmp_path, "other")
    with pytest.raises(TLSConfigError) as info:
        tls_context(pki["server.crt"], other["server.key"])
    assert "APP_TLS_CERT_FILE" in str(info.value) and "PRIVATE KEY" not in str(info.value)


# --- settings and the process ------------------------------------------------------------------


@pytest.fixture
def env(tmp_path, pki):
    for name, content in (("db.pw", "s3cret\n"), ("redis.pw", "r3dis")):
        (tmp_path / name).write_text(content)
    return {
        "APP_SERVER_NAME": "dev-app-1", "DB_PRIMARY_HOST": "10.0.1.10", "DB_NAME": "medisys", "DB_USER": "medisys_app",
        "DB_PASSWORD_FILE": str(tmp_path / "db.pw"), "DB_SSLROOTCERT": pki["ca.crt"], "REDIS_NODES": "10.0.2.10:6379",
        "REDIS_PASSWORD_FILE": str(tmp_path / "redis.pw"), "REDIS_CA_FILE": pki["ca.crt"],
        "APP_TLS_CERT_FILE": pki["server.crt"], "APP_TLS_KEY_FILE": pki["server.key"],
    }


def test_certificate_and_key_paths_come_from_the_environment(env, pki):
    settings = from_env(env)
    assert (settings.tls_cert_file, settings.tls_key_file) == (pki["server.crt"], pki["server.key"])


def test_neither_variable_means_plain_http(env):
    del env["APP_TLS_CERT_FILE"], env["APP_TLS_KEY_FILE"]
    assert from_env(env).tls_cert_file == ""


@pytest.mark.parametrize("missing,present", [("APP_TLS_KEY_FILE", "APP_TLS_CERT_FILE"), ("APP_TLS_CERT_FILE", "APP_TLS_KEY_FILE")])
def test_half_a_pair_is_refused_naming_the_missing_variable(env, missing, present):
    env[missing] = ""
    with pytest.raises(SettingsError) as info:
        from_env(env)
    assert info.value.variable == missing and present in str(info.value)


def test_an_unreadable_certificate_file_is_refused(env):
    env["APP_TLS_CERT_FILE"] = "/nonexistent/server.crt"
    with pytest.raises(SettingsError) as info:
        from_env(env)
    assert info.value.variable == "APP_TLS_CERT_FILE"


def run_process(env):
    return subprocess.run([sys.executable, "-m", "medisys_app"], cwd=APP_DIR, env=env, capture_output=True, text=True, timeout=30)


def test_process_with_only_a_certificate_exits_2_naming_the_key_variable(env):
    del env["APP_TLS_KEY_FILE"]
    proc = run_process(env)
    assert proc.returncode == 2
    assert "APP_TLS_KEY_FILE: is required when APP_TLS_CERT_FILE is set" in proc.stderr


def test_process_with_a_mismatched_pair_exits_2_before_serving(env, tmp_path):
    env["APP_TLS_KEY_FILE"] = issue(tmp_path, "stray")["server.key"]
    proc = run_process(env)
    assert proc.returncode == 2
    assert "cannot load the certificate and its private key" in proc.stderr and "listening" not in proc.stdout
