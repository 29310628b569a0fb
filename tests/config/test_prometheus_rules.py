"""The alert rules, their promtool unit tests, the example Alertmanager configuration and the
dashboard queries, checked by the real tools: promtool (medisys/prometheus image) and amtool
(medisys/alertmanager image).

The docker tests are skipped only when there is no docker command at all. A missing image or a
stopped engine is a failure: build the images with `scripts/build-images`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "components/templates/prometheus/rules/medisys.rules.yml"
RULE_TESTS = REPO / "tests/config/prometheus/medisys.rules.test.yml"
ALERTMANAGER_EXAMPLE = REPO / "components/templates/alertmanager/example.yml"
DASHBOARDS = REPO / "components/templates/grafana/dashboards"
RELEASE = (REPO / "images/RELEASE").read_text().strip()
PROMETHEUS_IMAGE = f"medisys/prometheus:{RELEASE}"
ALERTMANAGER_IMAGE = f"medisys/alertmanager:{RELEASE}"
IN_CONTAINER = "/w"  # where the repository is mounted, read-only

needs_docker = pytest.mark.skipif(
    shutil.which("docker") is None,
    reason="no docker command: promtool and amtool run in the medisys/prometheus and medisys/alertmanager images",
)


def in_container(path: Path) -> str:
    return f"{IN_CONTAINER}/{path.relative_to(REPO).as_posix()}"


def run_tool(image: str, tool: str, *args: str, workdir: str | None = None, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run `tool args` in `image` with the repository mounted read-only, as the calling user (so
    the container reads exactly what this process can), without network."""
    inspect = subprocess.run(["docker", "image", "inspect", image], capture_output=True, text=True, timeout=60)
    if inspect.returncode != 0:
        pytest.fail(f"image {image} is not available ({inspect.stderr.strip()}): build it with scripts/build-images")
    command = [
        "docker", "run", "--rm", "--network", "none",
        "--user", f"{os.getuid()}:{os.getgid()}",
        "-v", f"{REPO}:{IN_CONTAINER}:ro",
        "--entrypoint", tool,
    ]
    if workdir:
        command += ["-w", workdir]
    if stdin is not None:
        command.append("-i")
    command += [image, *args]
    return subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=300)


def assert_ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, f"{' '.join(result.args[-4:])} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"


def load_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def alert_rules() -> list[dict]:
    return [rule for group in load_yaml(RULES)["groups"] for rule in group["rules"] if "alert" in rule]


# --- the rules file on its own -----------------------------------------------------------------


def test_every_alert_has_severity_component_and_annotations() -> None:
    rules = alert_rules()
    assert rules, "no alert rules found"
    for rule in rules:
        name = rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        assert rule["labels"].get("component"), f"{name} has no component label"
        annotations = rule["annotations"]
        assert annotations.get("summary") and annotations.get("description"), f"{name} lacks summary or description"
        assert annotations.get("runbook") == "README.md#runbooks", name


def test_the_expected_alerts_exist() -> None:
    names = {rule["alert"] for rule in alert_rules()}
    expected = {
        "AppServerDown", "AppServersDegraded", "TargetDown", "HighErrorRate", "LoadBalancerHighErrorRate",
        "HighLatencyP95", "HighMemoryUsage", "DiskAlmostFull", "DatabaseConnectionFailures",
        "AppDatabaseHealthFailing", "ReplicationLagHigh", "RedisClusterNotOk", "RedisNodeDown", "RedisMasterWithoutReplica", "BackupTooOld",
        "FullBackupTooOld", "BackupMissing", "BackupRepositoryEmpty", "BackupRepositoryError", "BackupRunFailed",
        "WalArchiveFailing", "WalArchiveLagging", "WalArchiveUnmeasured", "CertificateExpiringSoon",
    }
    assert expected <= names, f"missing alerts: {sorted(expected - names)}"


def test_rules_file_has_no_python_placeholders() -> None:
    # Uploaded as it is: a ${...} would reach Prometheus verbatim.
    assert "${" not in RULES.read_text()


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    tests = load_yaml(RULE_TESTS)
    assert [(RULE_TESTS.parent / f).resolve() for f in tests["rule_files"]] == [RULES.resolve()]
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in tests["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in alert_rules()}
    assert not names - firing, f"alerts never tested firing: {sorted(names - firing)}"
    assert not names - quiet, f"alerts never tested quiet: {sorted(names - quiet)}"


# --- promtool ----------------------------------------------------------------------------------


@needs_docker
def test_promtool_check_rules() -> None:
    assert_ok(run_tool(PROMETHEUS_IMAGE, "promtool", "check", "rules", "--lint=all", "--lint-fatal", in_container(RULES)))


@needs_docker
def test_promtool_rule_unit_tests() -> None:
    result = run_tool(PROMETHEUS_IMAGE, "promtool", "test", "rules", RULE_TESTS.name, workdir=in_container(RULE_TESTS.parent))
    assert_ok(result)
    assert "SUCCESS" in result.stdout


@needs_docker
def test_dashboard_queries_parse() -> None:
    # promtool has no query checker; every dashboard expression becomes a recording rule instead.
    rules = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                rules.append({"record": f"dashboard:{path.stem}:panel{panel['id']}{target['refId']}", "expr": target["expr"]})
    assert rules
    result = run_tool(PROMETHEUS_IMAGE, "promtool", "check", "rules", "--lint=none",
                      stdin=yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    assert_ok(result)


# --- Alertmanager ------------------------------------------------------------------------------


def severity_route(config: dict, severity: str) -> dict:
    routes = [r for r in config["route"]["routes"] if r.get("matchers") == [f'severity="{severity}"']]
    assert len(routes) == 1, f"expected one route for severity={severity}"
    return routes[0]


def test_alertmanager_example_shape() -> None:
    config = load_yaml(ALERTMANAGER_EXAMPLE)
    critical = severity_route(config, "critical")
    warning = severity_route(config, "warning")
    assert (critical["group_wait"], critical["repeat_interval"]) == ("10s", "1h")
    assert (warning["group_wait"], warning["repeat_interval"]) == ("1m", "4h")
    assert config["inhibit_rules"] == [{
        "source_matchers": ['severity="critical"'],
        "target_matchers": ['severity="warning"'],
        "equal": ["alertname", "instance"],
    }]
    receivers = {r["name"]: r for r in config["receivers"]}
    assert set(receivers) == {critical["receiver"], warning["receiver"]}
    assert config["route"]["receiver"] in receivers
    for receiver in receivers.values():
        for hook in receiver.get("webhook_configs", []):
            assert hook["url"].startswith(("https://", "http://")) and hook["send_resolved"] is True


@needs_docker
def test_amtool_check_config() -> None:
    assert_ok(run_tool(ALERTMANAGER_IMAGE, "amtool", "check-config", in_container(ALERTMANAGER_EXAMPLE)))


@needs_docker
@pytest.mark.parametrize("labels, severity", [
    (["alertname=AppServerDown", "severity=critical"], "critical"),
    (["alertname=TargetDown", "severity=warning"], "warning"),
    (["alertname=SomethingElse"], None),  # no severity: the root receiver
])
def test_amtool_routes_by_severity(labels: list[str], severity: str | None) -> None:
    config = load_yaml(ALERTMANAGER_EXAMPLE)
    expected = severity_route(config, severity)["receiver"] if severity else config["route"]["receiver"]
    result = run_tool(ALERTMANAGER_IMAGE, "amtool", "config", "routes", "test",
                      f"--config.file={in_container(ALERTMANAGER_EXAMPLE)}", *labels)
    assert_ok(result)
    assert result.stdout.strip() == expected
