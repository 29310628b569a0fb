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
CONFIG_DIR = "/etc/grafana/provisioning"
PASSWORD_FILE = f"{CONFIG_DIR}/secrets/admin_password"
STAGED = "/tmp/medisys-grafana"


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


def grafanas(mocks, role: str = "grafana") -> list[Any]:
    return [c for c in mocks.of_type(CONTAINER) if labels_of(c)["medisys.role"] == role]


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
    (grafana,), (job,) = grafanas(mocks), grafanas(mocks, "grafana-config")
    (password,) = [p for p in mocks.of_type(RANDOM_PASSWORD) if p.name == f"{cfg.name_prefix}-mon-grafana-admin"]
    assert password.inputs["length"] >= 32
    value = password.outputs["result"]
    # The job installs it into the config volume; only the job's uploads carry it, as a secret.
    assert uploads_of(job)[f"{STAGED}/secrets/admin_password"] == value
    assert "uploads" in job.secret_paths
    env = envs_of(grafana)
    assert env["GF_SECURITY_ADMIN_PASSWORD__FILE"] == PASSWORD_FILE
    assert "GF_SECURITY_ADMIN_PASSWORD" not in env
    for container in (grafana, job):
        assert all(value not in entry for entry in container.inputs.get("envs") or [])
        assert value not in str(container.inputs.get("entrypoints")) and value not in str(container.inputs.get("labels"))
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false" and env["GF_USERS_ALLOW_SIGN_UP"] == "false"


def test_grafana_is_provisioned_with_the_prometheus_datasource_and_the_dashboards(deployed):
    _, mocks = deployed
    (grafana,), (job,) = grafanas(mocks), grafanas(mocks, "grafana-config")
    staged = uploads_of(job)
    datasource = yaml.safe_load(staged[f"{STAGED}/datasources/prometheus.yml"])
    assert datasource["datasources"][0]["uid"] == "medisys-prometheus"
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"
    provider = yaml.safe_load(staged[f"{STAGED}/dashboards/medisys.yml"])["providers"][0]
    dashboards = provider["options"]["path"]
    assert dashboards == f"{CONFIG_DIR}/medisys-dashboards"
    assert '"uid": "medisys-overview"' in staged[f"{STAGED}/medisys-dashboards/overview.json"]
    # The job copies the staged tree into the config volume, which Grafana reads (read-only).
    script = job.inputs["entrypoints"][-1]
    assert f"cp -R {STAGED}/. ." in script and f"cd {CONFIG_DIR}" in script and "umask 077" in script
    volumes = {v["containerPath"]: v for v in grafana.inputs["volumes"]}
    (job_volume,) = job.inputs["volumes"]
    assert job_volume["containerPath"] == CONFIG_DIR and not job_volume.get("readOnly")
    assert volumes[CONFIG_DIR]["volumeName"] == job_volume["volumeName"] and volumes[CONFIG_DIR]["readOnly"] is True
    assert envs_of(grafana)["GF_PATHS_PROVISIONING"] == CONFIG_DIR
    assert job.inputs["image"] == grafana.inputs["image"] and job.inputs["user"] == grafana.inputs["user"]
    assert labels_of(job)["medisys.one-shot"] == "true" and job.inputs["attach"] is True


def test_a_changed_dashboard_replaces_grafana(deployed, monkeypatch):
    from components import monitoring

    cfg, mocks = deployed
    (before,) = grafanas(mocks)
    files = monitoring.grafana_files()
    monkeypatch.setattr(monitoring, "grafana_files", lambda: {**files, "medisys-dashboards/new.json": "{}"})
    (after,) = grafanas(build(cfg))
    assert labels_of(after)["medisys.config-sha256"] != labels_of(before)["medisys.config-sha256"]


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
