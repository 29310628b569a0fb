"""Stand-in random and tls providers: RandomPassword, PrivateKey, SelfSignedCert, CertRequest and
LocallySignedCert, computed once at creation and kept in the state like the upstream providers do."""

from __future__ import annotations

import uuid
from typing import Any

from toolchain.providers.base import UNKNOWN, ResourceType
from toolchain.providers.crypto import computed_outputs

# Output properties each type computes (unknown during a preview).
COMPUTED = {
    "random:index/randomPassword:RandomPassword": ("result",),
    "tls:index/privateKey:PrivateKey": ("privateKeyPem",),
    "tls:index/selfSignedCert:SelfSignedCert": ("certPem",),
    "tls:index/certRequest:CertRequest": ("certRequestPem",),
    "tls:index/locallySignedCert:LocallySignedCert": ("certPem",),
}


class Computed(ResourceType):
    def __init__(self, token: str) -> None:
        self.token = token

    def check(self, inputs: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        failures = []
        if self.token == "tls:index/privateKey:PrivateKey" and (inputs.get("algorithm"), inputs.get("ecdsaCurve")) != ("ECDSA", "P256"):
            failures.append(("algorithm", "the stand-in tls provider makes ECDSA P256 keys only: set algorithm=ECDSA, ecdsa_curve=P256"))
        if self.token == "random:index/randomPassword:RandomPassword" and int(inputs.get("length", 16)) < 1:
            failures.append(("length", "a password needs a length of at least 1"))
        return inputs, failures

    def preview_outputs(self, inputs: dict[str, Any]) -> dict[str, Any]:
        return {**inputs, **{key: UNKNOWN for key in COMPUTED[self.token]}}

    def create(self, inputs: dict[str, Any], config: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        outputs = computed_outputs(self.token, inputs)
        # The id names the resource, never its secret value (ids are stored in plain text).
        return uuid.uuid4().hex, {**inputs, **outputs}


def random_types() -> list[ResourceType]:
    return [Computed(t) for t in COMPUTED if t.startswith("random:")]


def tls_types() -> list[ResourceType]:
    return [Computed(t) for t in COMPUTED if t.startswith("tls:")]
