"""The whole dev topology under mocks: every tier wired, every container following the conventions."""

from __future__ import annotations

import ipaddress

from tests.unit.conftest import CONTAINER, NETWORK, VOLUME, dev_config, envs_of, labels_of
from topology import build_topology

SECRET_WORDS = ("PASS", "PASSWORD", "SECRET", "TOKEN", "KEY", "CREDENTIAL")


def test_dev_topology_registers_every_tier(run_program):
    mocks = run_program(lambda: build_topology(dev_config(), None))
    roles = sorted(labels_of(c)["medisys.role"] for c in mocks.of_type(CONTAINER))
    assert roles == sorted(
        ["load-balancer", "load-balancer-config", "app", "app", "app-migrations", "app-rollout-gate", "app-rollout-gate", "postgres", "postgres", "etcd", "etcd", "etcd", "postgres-proxy", "postgres-backup", "offsite-sftp", *["redis"] * 6,
         "redis-cluster-init", "postgres-exporter", "redis-exporter", "blackbox-exporter", "prometheus", "alertmanager",
         "prometheus-config", "alertmanager-config"]
    )
    assert len(mocks.of_type(NETWORK)) == 5


def test_only_the_load_balancer_publishes_ports_and_only_on_loopback(run_program):
    mocks = run_program(lambda: build_topology(dev_config(), None))
    publishing = [c for c in mocks.of_type(CONTAINER) if c.inputs.get("ports")]
    assert [labels_of(c)["medisys.role"] for c in publishing] == ["load-balancer"]
    assert {p["ip"] for p in publishing[0].inputs["ports"]} == {"127.0.0.1"}


def test_every_container_is_hardened_and_limited(run_program):
    mocks = run_program(lambda: build_topology(dev_config(), None))
    for c in mocks.of_type(CONTAINER):
        assert c.inputs["capabilities"]["drops"] == ["ALL"], c.name
        assert "no-new-privileges:true" in c.inputs["securityOpts"], c.name
        assert c.inputs["memory"] >= 64 and float(c.inputs["cpus"]) > 0, c.name
        assert c.inputs.get("user") not in (None, "", "root", "0"), c.name
        assert not c.inputs.get("privileged"), c.name
        image = c.inputs["image"]
        assert ":" in image and not image.endswith(":latest"), c.name
        if labels_of(c).get("medisys.one-shot") != "true":
            assert c.inputs["healthcheck"]["tests"][0] == "CMD", c.name
            assert c.inputs["restart"] == "unless-stopped", c.name


def test_no_secret_travels_in_an_environment_variable(run_program):
    mocks = run_program(lambda: build_topology(dev_config(), None))
    for c in mocks.of_type(CONTAINER):
        for name in envs_of(c):
            if any(word in name.upper() for word in SECRET_WORDS):
                assert name.endswith("_FILE"), f"{c.name}: {name} must point at a file"


def test_each_container_joins_only_the_segments_it_needs(run_program):
    cfg = dev_config()
    mocks = run_program(lambda: build_topology(cfg, None))
    segment_of = {str(getattr(cfg.networks, s).network_address): s for s in ("dmz", "production", "database", "management", "offsite")}

    def segments(container) -> set[str]:
        return {segment_of[str(ipaddress.ip_network(n["ipv4Address"] + "/24", strict=False).network_address)]
                for n in container.inputs["networksAdvanced"]}

    expected = {
        "load-balancer": {"dmz", "production", "management"},
        "app": {"production", "database", "management"},
        # Members push WAL to the repository host (the backup agent), which alone reaches offsite.
        "postgres": {"database"},
        "postgres-backup": {"database", "management", "offsite"},
        "offsite-sftp": {"offsite"},
        "etcd": {"database"},
        "postgres-proxy": {"database"},
        "redis": {"database"},
        "postgres-exporter": {"database", "management"},
        "redis-exporter": {"database", "management"},
        "prometheus": {"management"},
        "alertmanager": {"management"},
    }
    for c in mocks.of_type(CONTAINER):
        role = labels_of(c)["medisys.role"]
        if role in expected:
            assert segments(c) == expected[role], c.name


def test_every_stateful_service_keeps_its_data_on_a_named_volume(run_program):
    mocks = run_program(lambda: build_topology(dev_config(), None))
    volume_roles = sorted(labels_of(v)["medisys.role"] for v in mocks.of_type(VOLUME))
    assert volume_roles == sorted(
        ["postgres-data", "postgres-data", "etcd-data", "etcd-data", "etcd-data", "backup-repo", "offsite-repo", *["redis-data"] * 6,
         "prometheus-data", "alertmanager-data", "load-balancer-runtime", "prometheus-config", "alertmanager-config"]
    )


def test_every_container_that_receives_a_password_or_key_keeps_its_uploads_secret(run_program):
    mocks = run_program(lambda: build_topology(dev_config(), None))
    secret_markers = ("/run/secrets/", ".key", "secrets.conf", "secrets.yml", "cipher.conf", "offsite.conf", "id_ed25519", "passwords.json", "postgres_exporter.yml", "server.pem")
    checked = 0
    for c in mocks.of_type(CONTAINER):
        files = [u["file"] for u in c.inputs.get("uploads", [])]
        if any(marker in f for f in files for marker in secret_markers):
            assert "uploads" in c.secret_paths, c.name
            checked += 1
    assert checked >= 10
