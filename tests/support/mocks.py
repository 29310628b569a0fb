"""Pulumi mocks that record what a program registers and compute realistic outputs.

Passwords are random and certificates are real (cryptography), so the recorded resources can
also be replayed onto a Docker engine (tests/support/replay.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi

from toolchain.providers.crypto import computed_outputs


SECRET_SIG = "4dabf18193072939515e22adb298388d"  # the wire marker of a secret value


@dataclass
class Registered:
    type: str
    name: str
    inputs: dict[str, Any]  # secrets unwrapped
    outputs: dict[str, Any]
    secret_paths: set[str]  # where the inputs held secrets, e.g. "uploads.2.content"
    provider: str = ""  # "<provider urn>::<id>" of an explicit provider, "" for the default one


def unwrap_secrets(value: Any, path: str, found: set[str]) -> Any:
    if isinstance(value, dict):
        if SECRET_SIG in value:
            found.add(path)
            return unwrap_secrets(value.get("value"), path, found)
        return {k: unwrap_secrets(v, f"{path}.{k}" if path else k, found) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap_secrets(v, f"{path}.{i}", found) for i, v in enumerate(value)]
    return value


def _computed_outputs(type_token: str, inputs: dict[str, Any]) -> dict[str, Any]:
    if type_token == "docker:index/container:Container":
        return {"exitCode": 0}
    return computed_outputs(type_token, inputs)


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
        self.dependencies: dict[str, list[str]] = {}  # filled by record(): name -> URNs

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        secret_paths: set[str] = set()
        inputs = unwrap_secrets(dict(args.inputs), "", secret_paths)
        outputs = {**inputs, **_stable_outputs(args.typ, args.name, inputs)}
        self.resources.append(Registered(args.typ, args.name, inputs, outputs, secret_paths, args.provider or ""))
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
    """Runs `build` under fresh mocks and returns what it registered once every RPC has finished,
    with each resource's explicit and implicit dependencies (URNs) as sent to the engine."""
    from pulumi.runtime.mocks import MockMonitor

    mocks = RecordingMocks()
    monitor = MockMonitor(mocks)
    register = monitor.RegisterResource

    def capture(request: Any) -> Any:
        mocks.dependencies[request.name] = list(request.dependencies)
        return register(request)

    monitor.RegisterResource = capture  # type: ignore[method-assign]
    pulumi.runtime.set_mocks(mocks, project="medisys-platform", stack=stack, preview=False, monitor=monitor)

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
