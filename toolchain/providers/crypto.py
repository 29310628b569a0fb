"""Passwords, keys and certificates as pulumi-random and pulumi-tls make them.

Used by the stand-in random and tls providers (toolchain/providers/keys.py) and by the test
mocks, so a recorded program and a deployed one hold the same kind of material.
"""

from __future__ import annotations

import datetime
import ipaddress
import secrets
import string
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


# pulumi-random's default set of special characters
SPECIAL = "!@#$%&*()-_=+[]{}<>:?"


def random_password(inputs: dict[str, Any]) -> str:
    """A password from the character classes RandomPassword's inputs allow (all but special by default here)."""
    length = int(inputs.get("length", 16))
    classes = [chars for key, chars in (("upper", string.ascii_uppercase), ("lower", string.ascii_lowercase),
                                        ("numeric", string.digits)) if inputs.get(key, True)]
    if inputs.get("special", True):
        classes.append(inputs.get("overrideSpecial") or SPECIAL)
    if not classes:
        raise ValueError("RandomPassword needs at least one character class (upper, lower, numeric or special)")
    alphabet = "".join(classes)
    while True:
        password = "".join(secrets.choice(alphabet) for _ in range(length))
        # Like pulumi-random, every allowed class appears at least once when the length allows it.
        if length < len(classes) or all(any(c in chars for c in password) for chars in classes):
            return password


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


def computed_outputs(type_token: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """What pulumi-random and pulumi-tls compute for these inputs, for the types this program uses."""
    if type_token == "random:index/randomPassword:RandomPassword":
        return {"result": random_password(inputs)}
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
        signed = _sign(csr.subject, csr.public_key(), ca_cert.subject, _load_key(inputs["caPrivateKeyPem"]), inputs, sans)
        return {"certPem": signed}
    return {}
