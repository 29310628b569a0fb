"""The pre-flight check stops `make up` before any change when a port or subnet is taken."""

from __future__ import annotations

import importlib.util
import socket
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "preflight.py"
spec = importlib.util.spec_from_file_location("preflight", SCRIPT)
preflight = importlib.util.module_from_spec(spec)
spec.loader.exec_module(preflight)


def test_a_taken_port_is_reported_with_the_setting_to_change(monkeypatch):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        assert preflight.port_free("127.0.0.1", port) is False
        cfg = preflight.config.load({"environment": "dev", "load_balancer": {"https_port": port, "http_port": 1}}, "dev")
        monkeypatch.setattr(preflight, "stack_config", lambda stack: cfg)
        monkeypatch.setattr(preflight, "own_ports", lambda stack: set())
        monkeypatch.setattr(preflight, "foreign_subnets", lambda prefix: {})
        found = preflight.problems("dev")
    assert any(f"127.0.0.1:{port} is already in use" in p and "https_port" in p for p in found)


def test_an_overlapping_docker_network_is_reported(monkeypatch):
    import ipaddress

    cfg = preflight.config.load({"environment": "dev", "load_balancer": {"https_port": 1, "http_port": 2}}, "dev")
    monkeypatch.setattr(preflight, "stack_config", lambda stack: cfg)
    monkeypatch.setattr(preflight, "own_ports", lambda stack: {1, 2})
    monkeypatch.setattr(preflight, "foreign_subnets", lambda prefix: {"other-net": ipaddress.IPv4Network("10.0.2.0/23")})
    found = preflight.problems("dev")
    assert len(found) == 2  # database 10.0.2.0/24 and management 10.0.3.0/24
    assert all("other-net" in p for p in found)


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_the_stack_files_load(stack):
    assert preflight.stack_config(stack).environment == stack
