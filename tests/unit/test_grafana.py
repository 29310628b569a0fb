"""Grafana per environment, under mocks: staging and prod build it from their stack files (the
official image by digest, the management segment only, a generated secret admin password), dev
leaves it off and says so once."""

from __future__ import annotations

import re
from typing import Any

import pulumi
import pytest
import yaml

import config
from tests.support.engine import ROOT
from tests.support.mocks import issue_test_certificates, record
from tests.unit.conftest import CONTAINER, NETWORK, dev_config, envs_of, labels_of, uploads_of
from topology import build_topology

RANDOM_PASSWORD = "random:index/randomPassword:RandomPassword"
DIGEST = re.compile(r"^grafana/grafana:\d+\.\d+\.\d+@sha256:[0-9a-f]{64}$")
PASSWORD_FILE = "/run/secrets/grafana_admin_password"


def stack_file_config(stack: str) -> config.StackConfig:
    document = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
    return config.load({k.split(":", 1)[1]: v for k, v in document.items() if k.startswith("medisys:")}, stack)


def build(cfg: config.StackConfig):
    edge = None
    if cfg.load_balancer.certificate.mode == "provided":
        name = cfg.load_balancer.certificate.server_names[0]
        certs = issue_test_certificates(name, [name], [])
        edge = config.EdgeCertificate(pulumi.Output.secret(certs["cert"]), pulumi.Output.secret(certs["key"]))
    return record(lambda: build_topology(cfg, edge))


def grafanas(mocks) -> list[Any]:
    return [c for c in mocks.of_type(CONTAINER) if labels_of(c)["medisys.role"] == "grafana"]


@pytest.fixture(scope="module", params=["staging", "prod"])
def deployed(request):
    cfg = stack_file_config(request.param)
    return cfg, build(cfg)


def test_staging_and_prod_run_grafana_from_the_official_image_pinned_by_digest(deployed):
    cfg, mocks = deployed
    (grafana,) = grafanas(mocks)
    assert grafana.inputs["image"] == config.GRAFANA_IMAGE
    assert DIGEST.match(grafana.inputs["image"])


def test_grafana_is_on_the_management_segment_only_and_publishes_nothing(deployed):
    cfg, mocks = deployed
    (grafana,) = grafanas(mocks)
    management = next(n for n in mocks.of_type(NETWORK) if labels_of(n)["medisys.segment"] == "management")
    assert management.inputs["internal"] is True
    attachments = grafana.inputs["networksAdvanced"]
    assert [(a["name"], a["ipv4Address"]) for a in attachments] == [
        (management.inputs["name"], cfg.networks.host("management", 52))
    ]
    assert attachments[0]["aliases"] == ["grafana"]
    assert not grafana.inputs.get("ports") and not grafana.inputs.get("publishAllPorts")


def test_grafana_admin_password_is_generated_and_reaches_it_only_as_a_secret_file(deployed):
    cfg, mocks = deployed
    (grafana,) = grafanas(mocks)
    (password,) = [p for p in mocks.of_type(RANDOM_PASSWORD) if p.name == f"{cfg.name_prefix}-mon-grafana-admin"]
    assert password.inputs["length"] >= 32
    value = password.outputs["result"]
    assert uploads_of(grafana)[PASSWORD_FILE] == value
    assert "uploads" in grafana.secret_paths
    env = envs_of(grafana)
    assert env["GF_SECURITY_ADMIN_PASSWORD__FILE"] == PASSWORD_FILE
    assert "GF_SECURITY_ADMIN_PASSWORD" not in env
    assert all(value not in entry for entry in grafana.inputs["envs"])
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false" and env["GF_USERS_ALLOW_SIGN_UP"] == "false"


def test_grafana_is_provisioned_with_the_prometheus_datasource_and_the_dashboards(deployed):
    _, mocks = deployed
    (grafana,) = grafanas(mocks)
    uploads = uploads_of(grafana)
    datasource = yaml.safe_load(uploads["/etc/grafana/provisioning/datasources/prometheus.yml"])
    assert datasource["datasources"][0]["uid"] == "medisys-prometheus"
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"
    assert "/etc/grafana/provisioning/dashboards/medisys.yml" in uploads
    assert '"uid": "medisys-overview"' in uploads["/var/lib/grafana/dashboards/overview.json"]


def test_grafana_container_is_hardened_and_limited(deployed):
    cfg, mocks = deployed
    (grafana,) = grafanas(mocks)
    assert grafana.inputs["user"] == "472"
    assert grafana.inputs["capabilities"]["drops"] == ["ALL"]
    assert "no-new-privileges:true" in grafana.inputs["securityOpts"]
    assert not grafana.inputs.get("privileged")
    assert grafana.inputs["memory"] == cfg.monitoring.grafana_resources.memory_mb == grafana.inputs["memorySwap"]
    assert float(grafana.inputs["cpus"]) == cfg.monitoring.grafana_resources.cpus
    assert grafana.inputs["healthcheck"]["tests"][0] == "CMD" and grafana.inputs["restart"] == "unless-stopped"
    assert envs_of(grafana)["GF_LOG_MODE"] == "console"


def test_dev_leaves_grafana_off_and_says_so_once(monkeypatch):
    said: list[str] = []
    monkeypatch.setattr(pulumi.log, "info", lambda message, *a, **k: said.append(message))
    mocks = build(stack_file_config("dev"))
    assert grafanas(mocks) == []
    assert [m for m in said if "Grafana" in m] == [said[0]] and len(said) == 1
    assert "off in dev" in said[0] and config.GRAFANA_IMAGE in said[0]


def test_staging_says_nothing_about_grafana(monkeypatch):
    said: list[str] = []
    monkeypatch.setattr(pulumi.log, "info", lambda message, *a, **k: said.append(message))
    build(stack_file_config("staging"))
    assert not [m for m in said if "Grafana" in m]


def test_dev_can_switch_grafana_on_with_the_pinned_image_or_its_own():
    (grafana,) = grafanas(build(dev_config(monitoring={"grafana": True})))
    assert grafana.inputs["image"] == config.GRAFANA_IMAGE
    local = "registry.example/grafana:12.4.5"
    (grafana,) = grafanas(build(dev_config(monitoring={"grafana": True}, images={"overrides": {"grafana": local}})))
    assert grafana.inputs["image"] == local
