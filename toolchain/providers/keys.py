"""Stand-in random and tls providers, computed once at creation and kept in the state like the
upstream providers do: RandomPassword, RandomString, RandomInteger, RandomId, RandomUuid,
RandomShuffle, RandomPet; PrivateKey (RSA, ECDSA, ED25519), SelfSignedCert, CertRequest and
LocallySignedCert. Every input change replaces the resource, as upstream's (all their inputs,
keepers included, require replacement). Secrecy: the SDKs mark RandomPassword.result and
PrivateKey's private forms secret (additional_secret_outputs); RandomString.result is not secret,
as upstream's is not."""

from __future__ import annotations

import uuid
from typing import Any

from toolchain.providers.base import UNKNOWN, ResourceType
from toolchain.providers.crypto import CURVES, generate

_CHARACTERS = {"lower": True, "upper": True, "numeric": True, "number": True, "special": True,
               "minLower": 0, "minUpper": 0, "minNumeric": 0, "minSpecial": 0}

# Per type: the outputs it computes (unknown during a preview) and upstream's input defaults,
# which its check adds to the inputs.
TYPES: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "random:index/randomPassword:RandomPassword": (("result",), _CHARACTERS),
    "random:index/randomString:RandomString": (("result",), _CHARACTERS),
    "random:index/randomInteger:RandomInteger": (("result",), {}),
    "random:index/randomId:RandomId": (("b64Std", "b64Url", "dec", "hex"), {}),
    "random:index/randomUuid:RandomUuid": (("result",), {}),
    "random:index/randomShuffle:RandomShuffle": (("results",), {}),
    "random:index/randomPet:RandomPet": ((), {"length": 2, "separator": "-"}),
    "tls:index/privateKey:PrivateKey": (("privateKeyPem", "privateKeyPemPkcs8", "privateKeyOpenssh", "publicKeyPem", "publicKeyOpenssh",
                                         "publicKeyFingerprintMd5", "publicKeyFingerprintSha256"), {"rsaBits": 2048, "ecdsaCurve": "P224"}),
    "tls:index/selfSignedCert:SelfSignedCert": (("certPem",), {}),
    "tls:index/certRequest:CertRequest": (("certRequestPem",), {}),
    "tls:index/locallySignedCert:LocallySignedCert": (("certPem",), {}),
}

REQUIRED = {
    "random:index/randomPassword:RandomPassword": ("length",),
    "random:index/randomString:RandomString": ("length",),
    "random:index/randomInteger:RandomInteger": ("min", "max"),
    "random:index/randomId:RandomId": ("byteLength",),
    "tls:index/privateKey:PrivateKey": ("algorithm",),
}


def validate(token: str, inputs: dict[str, Any]) -> list[tuple[str, str]]:
    """Upstream's validation of these inputs, as (property, what to change) pairs."""
    failures = [(key, f"{key} is required") for key in REQUIRED.get(token, ()) if inputs.get(key) is None]
    if failures:
        return failures
    kind = token.rsplit(":", 1)[-1]
    if kind in ("RandomPassword", "RandomString"):
        length = int(inputs["length"])
        minimums = sum(int(inputs.get(k) or 0) for k in ("minLower", "minUpper", "minNumeric", "minSpecial"))
        if length < 1:
            failures.append(("length", "length must be at least 1"))
        elif minimums > length:
            failures.append(("length", f"length ({length}) must be at least the sum of the min_* counts ({minimums})"))
        if not any(inputs.get(k, True) for k in ("lower", "upper", "numeric", "special")):
            failures.append(("special", "at least one of upper, lower, numeric and special must be true"))
    elif kind == "RandomInteger" and int(inputs["min"]) > int(inputs["max"]):
        failures.append(("max", f"max ({inputs['max']}) must be at least min ({inputs['min']})"))
    elif kind == "RandomId" and int(inputs["byteLength"]) < 1:
        failures.append(("byteLength", "byte_length must be at least 1"))
    elif kind == "RandomPet" and int(inputs.get("length", 2)) < 1:
        failures.append(("length", "length must be at least 1"))
    elif kind == "RandomShuffle" and int(inputs.get("resultCount") or 0) < 0:
        failures.append(("resultCount", "result_count must not be negative"))
    elif kind == "PrivateKey":
        if inputs["algorithm"] not in ("RSA", "ECDSA", "ED25519"):
            failures.append(("algorithm", f"algorithm {inputs['algorithm']!r} is not supported: use RSA, ECDSA or ED25519"))
        if inputs.get("ecdsaCurve", "P224") not in CURVES:
            failures.append(("ecdsaCurve", f"ecdsa_curve {inputs['ecdsaCurve']!r} is not supported: use {', '.join(CURVES)}"))
        if inputs["algorithm"] == "RSA" and int(inputs.get("rsaBits", 2048)) < 1024:
            failures.append(("rsaBits", "rsa_bits must be at least 1024"))
    return failures


class Computed(ResourceType):
    def __init__(self, token: str) -> None:
        self.token = token
        self.computed, self.defaults = TYPES[token]

    def check(self, inputs: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        checked = {**self.defaults, **{k: v for k, v in inputs.items() if v is not None}}
        return checked, validate(self.token, checked)

    def preview_outputs(self, inputs: dict[str, Any]) -> dict[str, Any]:
        return {**inputs, **{key: UNKNOWN for key in self.computed}}

    def create(self, inputs: dict[str, Any], config: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        resource_id, outputs = generate(self.token, inputs)
        # Upstream's ids, which never carry a secret; a uuid for the certificates.
        return resource_id or uuid.uuid4().hex, {**inputs, **outputs}


def random_types() -> list[ResourceType]:
    return [Computed(t) for t in TYPES if t.startswith("random:")]


def tls_types() -> list[ResourceType]:
    return [Computed(t) for t in TYPES if t.startswith("tls:")]
