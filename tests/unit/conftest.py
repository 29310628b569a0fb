"""Pulumi mocks: run component code in-process and record what it registers, without an engine."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pulumi
import pytest

import config


@dataclass
class Registered:
    type: str
    name: str
    inputs: dict[str, Any]


class RecordingMocks(pulumi.runtime.Mocks):
    """Records every resource; returns plausible computed outputs for the types we use."""

    def __init__(self) -> None:
        self.resources: list[Registered] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.resources.append(Registered(args.typ, args.name, dict(args.inputs)))
        outputs = dict(args.inputs)
        digest = hashlib.sha256(args.name.encode()).hexdigest()
        if args.typ == "random:index/randomPassword:RandomPassword":
            outputs["result"] = digest[: int(args.inputs.get("length", 16))]
        elif args.typ == "tls:index/privateKey:PrivateKey":
            outputs["private_key_pem"] = f"-----BEGIN PRIVATE KEY-----\n{digest}\n-----END PRIVATE KEY-----\n"
        elif args.typ in ("tls:index/selfSignedCert:SelfSignedCert", "tls:index/locallySignedCert:LocallySignedCert"):
            outputs["cert_pem"] = f"-----BEGIN CERTIFICATE-----\n{digest}\n-----END CERTIFICATE-----\n"
        elif args.typ == "tls:index/certRequest:CertRequest":
            outputs["cert_request_pem"] = "csr"
        elif args.typ == "docker:index/container:Container":
            outputs["exit_code"] = 0
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return {}, None

    def of_type(self, type_token: str) -> list[Registered]:
        return [r for r in self.resources if r.type == type_token]

    def named(self, name: str) -> Registered:
        matches = [r for r in self.resources if r.name == name]
        assert len(matches) == 1, f"expected one resource named {name}, found {len(matches)}"
        return matches[0]


CONTAINER = "docker:index/container:Container"
NETWORK = "docker:index/network:Network"
VOLUME = "docker:index/volume:Volume"


def dev_config(**overrides: Any) -> config.StackConfig:
    raw: dict[str, Any] = {"environment": "dev", **overrides}
    return config.load(raw, "dev")


@pytest.fixture
def run_program() -> Callable[[Callable[[], Any]], RecordingMocks]:
    """Runs `build` under fresh mocks and returns what it registered once every RPC has finished."""

    def run(build: Callable[[], Any]) -> RecordingMocks:
        mocks = RecordingMocks()
        pulumi.runtime.set_mocks(mocks, project="medisys-platform", stack="dev", preview=False)

        @pulumi.runtime.test
        def program() -> None:
            build()

        program()
        return mocks

    return run


def labels_of(resource: Registered) -> dict[str, str]:
    return {item["label"]: item["value"] for item in resource.inputs.get("labels", [])}


def uploads_of(resource: Registered) -> dict[str, str]:
    return {u["file"]: u.get("content") for u in resource.inputs.get("uploads", [])}


def envs_of(resource: Registered) -> dict[str, str]:
    return dict(e.split("=", 1) for e in resource.inputs.get("envs", []))
