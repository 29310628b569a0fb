"""Starts the project's stand-in provider plugins as the engine does, and talks gRPC to them."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
from google.protobuf import struct_pb2
from pulumi.runtime.proto import provider_pb2_grpc

ROOT = Path(__file__).resolve().parents[2]


def struct(values: dict) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(values)
    return s


def urn(token: str, name: str = "r") -> str:
    return f"urn:pulumi:dev::medisys-platform::medisys:platform:Parent${token}::{name}"


def plugin_stubs() -> Iterator[Callable[[str], provider_pb2_grpc.ResourceProviderStub]]:
    """For a fixture: yields a factory of one provider stub per plugin name; stops them after."""
    processes, stubs = [], {}

    def start(name: str) -> provider_pb2_grpc.ResourceProviderStub:
        if name not in stubs:
            process = subprocess.Popen([sys.executable, str(ROOT / "toolchain" / "plugin.py"), "resource", name, "1.0.0", "127.0.0.1:1"],
                                       stdout=subprocess.PIPE, text=True)
            processes.append(process)
            assert process.stdout is not None
            port = int(process.stdout.readline())
            stubs[name] = provider_pb2_grpc.ResourceProviderStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
        return stubs[name]

    yield start
    for process in processes:
        process.terminate()
        process.wait(timeout=10)
