"""Random values, keys and certificates as pulumi-random 4.21.4 and pulumi-tls 5.6.2 make them
(their Terraform providers, hashicorp/terraform-provider-random and -tls).

Used by the stand-in random and tls providers (toolchain/providers/keys.py) and by the test
mocks, so a recorded program and a deployed one hold the same kind of material.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import random
import secrets
import string
import uuid
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


# pulumi-random's default set of special characters
SPECIAL = "!@#$%&*()-_=+[]{}<>:?"


def random_string(inputs: dict[str, Any]) -> str:
    """RandomString and RandomPassword: first the minimum count of each class, then any allowed
    character up to the length, shuffled (upstream's algorithm; it guarantees only the minimums)."""
    length = int(inputs.get("length", 16))
    numeric = inputs.get("numeric", inputs.get("number", True))
    classes = {
        "upper": (string.ascii_uppercase, inputs.get("upper", True), int(inputs.get("minUpper") or 0)),
        "lower": (string.ascii_lowercase, inputs.get("lower", True), int(inputs.get("minLower") or 0)),
        "numeric": (string.digits, numeric, int(inputs.get("minNumeric") or 0)),
        "special": (inputs.get("overrideSpecial") or SPECIAL, inputs.get("special", True), int(inputs.get("minSpecial") or 0)),
    }
    alphabet = "".join(chars for chars, allowed, _ in classes.values() if allowed)
    if not alphabet:
        raise ValueError("at least one of upper, lower, numeric and special must be true")
    chars = [secrets.choice(chars) for chars, _, minimum in classes.values() for _ in range(minimum)]
    chars += [secrets.choice(alphabet) for _ in range(length - len(chars))]
    secrets.SystemRandom().shuffle(chars)
    return "".join(chars)


def random_password(inputs: dict[str, Any]) -> str:
    return random_string(inputs)


def _seeded(inputs: dict[str, Any]) -> random.Random:
    # A seed gives the same result for the same seed, as upstream's does (not upstream's numbers).
    seed = inputs.get("seed")
    return random.Random(seed) if seed not in (None, "") else secrets.SystemRandom()


def random_integer(inputs: dict[str, Any]) -> int:
    return _seeded(inputs).randint(int(inputs["min"]), int(inputs["max"]))


def random_shuffle(inputs: dict[str, Any]) -> list[str]:
    """`resultCount` items; more than the inputs repeats them, each shuffle using every item once."""
    items = list(inputs.get("inputs") or [])
    count = int(inputs["resultCount"]) if inputs.get("resultCount") is not None else len(items)
    generator, results = _seeded(inputs), list[str]()
    while items and len(results) < count:
        batch = list(items)
        generator.shuffle(batch)
        results += batch[: count - len(results)]
    return results


def random_id(inputs: dict[str, Any]) -> dict[str, str]:
    raw = secrets.token_bytes(int(inputs["byteLength"]))
    prefix = inputs.get("prefix") or ""
    url = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    return {"id": url, "b64Url": prefix + url, "b64Std": prefix + base64.b64encode(raw).decode(),
            "hex": prefix + raw.hex(), "dec": prefix + str(int.from_bytes(raw, "big"))}


# Word lists of the stand-in's own (upstream draws from golang-petname's longer lists).
ADVERBS = ("briskly", "calmly", "gently", "happily", "kindly", "lightly", "neatly", "openly", "quietly", "rapidly", "simply",
           "smoothly", "softly", "steadily", "truly", "warmly", "wisely", "boldly", "freely", "fairly")
ADJECTIVES = ("able", "brave", "bright", "clever", "cosmic", "eager", "fair", "fancy", "gentle", "golden", "happy", "humble",
              "jolly", "keen", "lucky", "merry", "noble", "proud", "quick", "rapid", "sharp", "steady", "sunny", "tidy", "vivid")
NAMES = ("badger", "beagle", "bison", "cobra", "condor", "coyote", "dingo", "eagle", "falcon", "ferret", "gecko", "heron",
         "ibex", "jaguar", "koala", "lemur", "lynx", "marmot", "newt", "otter", "panda", "puffin", "quail", "raven", "walrus")


def random_pet(inputs: dict[str, Any]) -> str:
    """length words: adverbs, then an adjective, then an animal (one word: the animal)."""
    length = int(inputs.get("length", 2))
    words = [secrets.choice(ADVERBS) for _ in range(max(length - 2, 0))]
    words += [secrets.choice(ADJECTIVES)] if length >= 2 else []
    words.append(secrets.choice(NAMES))
    separator = inputs.get("separator", "-")
    return separator.join(([inputs["prefix"]] if inputs.get("prefix") else []) + words)


CURVES: dict[str, ec.EllipticCurve] = {"P224": ec.SECP224R1(), "P256": ec.SECP256R1(), "P384": ec.SECP384R1(), "P521": ec.SECP521R1()}


def private_key(inputs: dict[str, Any]) -> dict[str, str]:
    """tls.PrivateKey's outputs. privateKeyPem is PKCS#1 for RSA, SEC 1 for ECDSA and PKCS#8 for
    ED25519, as upstream writes them; ECDSA P224 has no OpenSSH forms (empty strings upstream)."""
    algorithm = inputs.get("algorithm", "ECDSA")
    key: Any
    if algorithm == "RSA":
        key = rsa.generate_private_key(public_exponent=65537, key_size=int(inputs.get("rsaBits", 2048)))
        traditional = serialization.PrivateFormat.TraditionalOpenSSL
    elif algorithm == "ECDSA":
        # Without inputs (the test mocks' default) a P256 key; upstream's check defaults the curve to P224.
        key = ec.generate_private_key(CURVES[inputs.get("ecdsaCurve", "P256")])
        traditional = serialization.PrivateFormat.TraditionalOpenSSL
    elif algorithm == "ED25519":
        key = ed25519.Ed25519PrivateKey.generate()
        traditional = serialization.PrivateFormat.PKCS8
    else:
        raise ValueError(f"Key Algorithm {algorithm!r} is not supported: use RSA, ECDSA or ED25519")
    pem = serialization.Encoding.PEM
    public = key.public_key()
    spki = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    outputs = {
        "privateKeyPem": key.private_bytes(pem, traditional, serialization.NoEncryption()).decode(),
        "privateKeyPemPkcs8": key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode(),
        "publicKeyPem": public.public_bytes(pem, serialization.PublicFormat.SubjectPublicKeyInfo).decode(),
        "privateKeyOpenssh": "", "publicKeyOpenssh": "", "publicKeyFingerprintMd5": "", "publicKeyFingerprintSha256": "",
        "id": hashlib.sha1(spki).hexdigest(),
    }
    if not (algorithm == "ECDSA" and inputs.get("ecdsaCurve") == "P224"):
        openssh = public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
        wire = base64.b64decode(openssh.split()[1])
        md5 = hashlib.md5(wire).hexdigest()
        outputs.update({
            "privateKeyOpenssh": key.private_bytes(pem, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()).decode(),
            "publicKeyOpenssh": openssh + "\n",
            "publicKeyFingerprintMd5": ":".join(md5[i:i + 2] for i in range(0, len(md5), 2)),
            "publicKeyFingerprintSha256": "SHA256:" + base64.b64encode(hashlib.sha256(wire).digest()).decode().rstrip("="),
        })
    return outputs


def _load_key(pem: str) -> Any:
    return serialization.load_pem_private_key(pem.encode(), password=None)


def _hash_for(key: Any) -> hashes.SHA256 | None:
    return None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()


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
    return builder.sign(issuer_key, _hash_for(issuer_key)).public_bytes(serialization.Encoding.PEM).decode()


def computed_outputs(type_token: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """What pulumi-random and pulumi-tls compute for these inputs (without the resource id)."""
    return generate(type_token, inputs)[1]


def generate(type_token: str, inputs: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """(the resource id upstream gives, or None for one of the stand-in's own; the computed outputs)."""
    outputs = _generate(type_token, inputs)
    return outputs.pop("id", None), outputs


def _generate(type_token: str, inputs: dict[str, Any]) -> dict[str, Any]:
    # "id": the resource id upstream gives (and, where upstream's id is the value, the value).
    if type_token == "random:index/randomPassword:RandomPassword":
        return {"result": random_password(inputs), "id": "none"}
    if type_token == "random:index/randomString:RandomString":
        result = random_string(inputs)
        return {"result": result, "id": result}
    if type_token == "random:index/randomInteger:RandomInteger":
        number = random_integer(inputs)
        return {"result": number, "id": str(number)}
    if type_token == "random:index/randomId:RandomId":
        return random_id(inputs)
    if type_token == "random:index/randomUuid:RandomUuid":
        value = str(uuid.uuid4())
        return {"result": value, "id": value}
    if type_token == "random:index/randomShuffle:RandomShuffle":
        return {"results": random_shuffle(inputs), "id": "-"}
    if type_token == "random:index/randomPet:RandomPet":
        pet = random_pet(inputs)
        return {"id": pet}
    if type_token == "tls:index/privateKey:PrivateKey":
        return private_key(inputs)
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
        return {"certRequestPem": builder.sign(key, _hash_for(key)).public_bytes(serialization.Encoding.PEM).decode()}
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
