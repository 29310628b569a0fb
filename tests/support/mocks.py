"""Pulumi mocks that record what a program registers and compute realistic outputs.

Passwords are random and certificates are real (cryptography), so the recorded resources can
also be replayed onto a Docker engine (tests/support/replay.py).
"""

from __future__ import annotations

import datetime
import json
import ipaddress
import secrets
from dataclasses import dataclass
from typing import Any

import pulumi
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


SECRET_SIG = "4dabf18193072939515e22adb298388d"  # the wire marker of a secret value


@dataclass
class Registered:
    type: str
    name: str
    inputs: dict[str, Any]  # secrets unwrapped
    outputs: dict[str, Any]
    secret_paths: set[str]  # where the inputs held secrets, e.g. "uploads.2.content"


def unwrap_secrets(value: Any, path: str, found: set[str]) -> Any:
    if isinstance(value, dict):
        if SECRET_SIG in value:
            found.add(path)
            return unwrap_secrets(value.get("value"), path, found)
        return {k: unwrap_secrets(v, f"{path}.{k}" if path else k, found) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap_secrets(v, f"{path}.{i}", found) for i, v in enumerate(value)]
    return value


def _load_key(pem: str) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def _name(subject: dict[str, Any] | None) -> x509.Name:
    subject = subject or {}
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, subject.get("commonName", "unnamed"))]
    if subject.get("organization"):
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, subject["organization"]))
    return x509.Name(attributes)


def _sign(subject: x509.Name, public_key: Any, issuer: x509.Name, issuer_key: Any, inputs: dict[str, Any], sans: list[x509.GeneralName]) -> str:
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=int(inputs.get("validityPeriodHours", 24))))
    )
    uses = set(inputs.get("allowedUses", []))
    if inputs.get("isCaCertificate"):
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        builder = builder.add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        )
    else:
        builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        ekus = [oid for use, oid in (("server_auth", ExtendedKeyUsageOID.SERVER_AUTH), ("client_auth", ExtendedKeyUsageOID.CLIENT_AUTH)) if use in uses]
        if ekus:
            builder = builder.add_extension(x509.ExtendedKeyUsage(ekus), critical=False)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    # Key identifiers, as pulumi-tls writes them with set_subject_key_id: strict verifiers
    # (Python 3.13's default context) reject a chain without them.
    builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    builder = builder.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
    return builder.sign(issuer_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


def _computed_outputs(type_token: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """The outputs the real providers compute, for the types this program uses."""
    if type_token == "random:index/randomPassword:RandomPassword":
        length = int(inputs.get("length", 16))
        return {"result": secrets.token_hex(length)[:length]}
    if type_token == "tls:index/privateKey:PrivateKey":
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        return {"privateKeyPem": pem.decode()}
    if type_token == "tls:index/selfSignedCert:SelfSignedCert":
        key = _load_key(inputs["privateKeyPem"])
        subject = _name(inputs.get("subject"))
        return {"certPem": _sign(subject, key.public_key(), subject, key, inputs, [])}
    if type_token == "tls:index/certRequest:CertRequest":
        # Kept as a parsable bundle: the mock "CSR" carries the public key and the names.
        key = _load_key(inputs["privateKeyPem"])
        builder = x509.CertificateSigningRequestBuilder().subject_name(_name(inputs.get("subject")))
        sans: list[x509.GeneralName] = [x509.DNSName(d) for d in inputs.get("dnsNames", [])]
        sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in inputs.get("ipAddresses", [])]
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return {"certRequestPem": builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()}
    if type_token == "tls:index/locallySignedCert:LocallySignedCert":
        csr = x509.load_pem_x509_csr(inputs["certRequestPem"].encode())
        ca_cert = x509.load_pem_x509_certificate(inputs["caCertPem"].encode())
        try:
            sans = list(csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
        except x509.ExtensionNotFound:
            sans = []
        pem = _sign(csr.subject, csr.public_key(), ca_cert.subject, _load_key(inputs["caPrivateKeyPem"]), inputs, sans)
        return {"certPem": pem}
    if type_token == "docker:index/container:Container":
        return {"exitCode": 0}
    return {}


# Computed outputs per (type, name, inputs): recording the same program twice in one process gives
# the same passwords and certificates, as a real stack keeps them between updates, so two
# recordings can be compared like a preview compares old and new state.
_OUTPUT_CACHE: dict[tuple[str, str, str], dict[str, Any]] = {}


def _stable_outputs(type_token: str, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    key = (type_token, name, json.dumps(inputs, sort_keys=True, default=str))
    if key not in _OUTPUT_CACHE:
        _OUTPUT_CACHE[key] = _computed_outputs(type_token, inputs)
    return _OUTPUT_CACHE[key]


class RecordingMocks(pulumi.runtime.Mocks):
    """Records every registered resource, in registration order (a valid creation order)."""

    def __init__(self) -> None:
        self.resources: list[Registered] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        secret_paths: set[str] = set()
        inputs = unwrap_secrets(dict(args.inputs), "", secret_paths)
        outputs = {**inputs, **_stable_outputs(args.typ, args.name, inputs)}
        self.resources.append(Registered(args.typ, args.name, inputs, outputs, secret_paths))
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return {}, None

    def of_type(self, type_token: str) -> list[Registered]:
        return [r for r in self.resources if r.type == type_token]

    def named(self, name: str) -> Registered:
        matches = [r for r in self.resources if r.name == name]
        assert len(matches) == 1, f"expected one resource named {name}, found {len(matches)}"
        return matches[0]


def record(build: Any, stack: str = "dev") -> RecordingMocks:
    """Runs `build` under fresh mocks and returns what it registered once every RPC has finished."""
    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(mocks, project="medisys-platform", stack=stack, preview=False)

    @pulumi.runtime.test
    def program() -> None:
        build()

    program()
    return mocks


def issue_test_certificates(common_name: str, dns_names: list[str], ip_addresses: list[str]) -> dict[str, str]:
    """A CA and a leaf signed by it, made the way the mocks make them (for config tests)."""
    ca_key = _computed_outputs("tls:index/privateKey:PrivateKey", {})["privateKeyPem"]
    ca_cert = _computed_outputs(
        "tls:index/selfSignedCert:SelfSignedCert",
        {"privateKeyPem": ca_key, "isCaCertificate": True, "validityPeriodHours": 24, "subject": {"commonName": "test CA"}},
    )["certPem"]
    key = _computed_outputs("tls:index/privateKey:PrivateKey", {})["privateKeyPem"]
    csr = _computed_outputs(
        "tls:index/certRequest:CertRequest",
        {"privateKeyPem": key, "subject": {"commonName": common_name}, "dnsNames": dns_names, "ipAddresses": ip_addresses},
    )["certRequestPem"]
    cert = _computed_outputs(
        "tls:index/locallySignedCert:LocallySignedCert",
        {"certRequestPem": csr, "caCertPem": ca_cert, "caPrivateKeyPem": ca_key, "validityPeriodHours": 24,
         "allowedUses": ["server_auth", "client_auth"]},
    )["certPem"]
    return {"ca": ca_cert, "cert": cert, "key": key}
