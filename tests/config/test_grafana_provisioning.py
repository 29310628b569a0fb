"""Grafana provisioning files: the Prometheus datasource, the dashboard provider and the
dashboards. Grafana itself does not run here, so these check what it would need: valid files,
every panel pinned to the provisioned datasource, and only metric names that exist (a metric
name typo in a dashboard shows an empty panel, never an error)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
GRAFANA = REPO / "components/templates/grafana"
DATASOURCES = GRAFANA / "provisioning/datasources/prometheus.yml"
PROVIDERS = GRAFANA / "provisioning/dashboards/medisys.yml"
DASHBOARD_DIR = GRAFANA / "dashboards"
RULES = REPO / "components/templates/prometheus/rules/medisys.rules.yml"
DATASOURCE_UID = "medisys-prometheus"

# Metrics the platform's exporters publish, beyond those the alert rules already use. Checked
# against the Debian trixie packages in the medisys images (redis_exporter 1.69, postgres_exporter
# 0.17, HAProxy 3.0) and the app (app/medisys_app/metrics.py).
KNOWN_EXPORTER_METRICS = {
    # Prometheus itself, for every target
    "up", "scrape_duration_seconds", "scrape_samples_scraped",
    # the app
    "app_info", "http_requests_total", "http_request_duration_seconds_bucket",
    "http_request_duration_seconds_sum", "http_request_duration_seconds_count",
    # HAProxy's built-in exporter
    "haproxy_backend_active_servers", "haproxy_backend_http_responses_total", "haproxy_backend_status",
    "haproxy_server_status", "haproxy_frontend_current_sessions", "haproxy_frontend_http_requests_total",
    # postgres_exporter
    "pg_up", "pg_replication_lag_seconds", "pg_replication_is_replica", "pg_replication_last_replay_seconds",
    "pg_stat_database_numbackends",
    # redis_exporter
    "redis_up", "redis_cluster_state", "redis_cluster_slots_ok", "redis_cluster_known_nodes",
    "redis_commands_processed_total", "redis_memory_used_bytes", "redis_memory_max_bytes",
    "redis_connected_clients",
    # the backup sidecar (images/postgres/entrypoint.sh)
    "medisys_backup_last_success_timestamp_seconds", "medisys_backup_full_interval_seconds",
    "medisys_backup_last_run_success",
    # blackbox_exporter
    "probe_success", "probe_ssl_earliest_cert_expiry", "probe_duration_seconds",
}

# Words in a PromQL expression that are neither metric names nor functions.
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
                "bool", "offset", "atan2", "Inf", "inf", "NaN", "nan"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, keywords and labels left out)."""
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)  # string literals
    text = re.sub(r"'(?:\\.|[^'\\])*'", "''", text)
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges and subqueries
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)  # label lists
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        before = text[match.start() - 1] if match.start() else " "
        if before.isdigit() or before == ".":  # 1e3, 5m (offset), 0.5
            continue
        if text[match.end():].lstrip().startswith("("):  # a function call
            continue
        if match.group(0) not in PROMQL_WORDS:
            names.add(match.group(0))
    return names


def rule_metrics() -> set[str]:
    rules = yaml.safe_load(RULES.read_text())
    return {name for group in rules["groups"] for rule in group["rules"] for name in metric_names(rule["expr"])}


def dashboards() -> list[tuple[str, dict]]:
    found = [(path.name, json.loads(path.read_text())) for path in sorted(DASHBOARD_DIR.glob("*.json"))]
    assert found, f"no dashboards in {DASHBOARD_DIR}"
    return found


def panels(dashboard: dict) -> list[dict]:
    """Every panel, including those nested in collapsed rows."""
    result = []
    for panel in dashboard.get("panels", []):
        result.append(panel)
        result.extend(panel.get("panels", []))
    return result


def queried_panels(dashboard: dict) -> list[dict]:
    return [p for p in panels(dashboard) if p.get("type") != "row"]


each_dashboard = pytest.mark.parametrize("name, dashboard", dashboards(), ids=[name for name, _ in dashboards()])


# --- provisioning ------------------------------------------------------------------------------


def test_datasource_is_the_pinned_prometheus() -> None:
    config = yaml.safe_load(DATASOURCES.read_text())
    assert config["apiVersion"] == 1
    (datasource,) = config["datasources"]
    assert datasource["uid"] == DATASOURCE_UID
    assert datasource["type"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090"
    assert datasource["access"] == "proxy"
    assert datasource["isDefault"] is True
    assert datasource["editable"] is False


def test_dashboard_provider_reads_the_dashboard_folder() -> None:
    config = yaml.safe_load(PROVIDERS.read_text())
    assert config["apiVersion"] == 1
    (provider,) = config["providers"]
    assert provider["type"] == "file"
    # Where components/monitoring.py's config job installs the dashboards (Grafana's config volume).
    assert provider["options"]["path"] == "/etc/grafana/provisioning/medisys-dashboards"
    assert provider["allowUiUpdates"] is False


# --- dashboards --------------------------------------------------------------------------------


@each_dashboard
def test_dashboard_header(name: str, dashboard: dict) -> None:
    assert dashboard["schemaVersion"] == 39, name
    assert re.fullmatch(r"[a-z0-9-]{1,40}", dashboard["uid"]), name
    assert dashboard["title"], name
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids)), f"{name}: duplicate panel ids"


def test_overview_dashboard_uid() -> None:
    overview = json.loads((DASHBOARD_DIR / "overview.json").read_text())
    assert overview["uid"] == "medisys-overview"
    uids = [d["uid"] for _, d in dashboards()]
    assert len(uids) == len(set(uids)), "dashboard uids must be unique"


@each_dashboard
def test_panels_fit_the_grid_without_overlap(name: str, dashboard: dict) -> None:
    taken: set[tuple[int, int]] = set()
    for panel in panels(dashboard):
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24, f"{name}: {panel['title']}"
        cells = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"]) for y in range(grid["y"], grid["y"] + grid["h"])}
        assert not cells & taken, f"{name}: panel {panel['title']!r} overlaps another"
        taken |= cells


@each_dashboard
def test_every_panel_is_pinned_to_the_datasource_and_has_queries(name: str, dashboard: dict) -> None:
    for panel in queried_panels(dashboard):
        title = panel.get("title")
        assert panel["datasource"] == {"type": "prometheus", "uid": DATASOURCE_UID}, f"{name}: {title}"
        assert panel["targets"], f"{name}: {title} has no query"
        for target in panel["targets"]:
            assert target.get("datasource", {}).get("uid") == DATASOURCE_UID, f"{name}: {title} {target.get('refId')}"
            assert target.get("expr", "").strip(), f"{name}: {title} {target.get('refId')} has an empty expr"
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), f"{name}: {title} repeats a refId"


def test_overview_covers_the_platform() -> None:
    overview = json.loads((DASHBOARD_DIR / "overview.json").read_text())
    assert {p["type"] for p in queried_panels(overview)} == {"timeseries"}
    used = {m for p in queried_panels(overview) for t in p["targets"] for m in metric_names(t["expr"])}
    expected = {
        "http_requests_total", "http_request_duration_seconds_bucket", "pg_replication_lag_seconds",
        "redis_commands_processed_total", "redis_memory_used_bytes",
        "medisys_backup_last_success_timestamp_seconds", "haproxy_backend_active_servers",
    }
    assert expected <= used, f"overview lacks {sorted(expected - used)}"


@each_dashboard
def test_dashboard_metrics_exist(name: str, dashboard: dict) -> None:
    known = rule_metrics() | KNOWN_EXPORTER_METRICS
    for panel in queried_panels(dashboard):
        for target in panel["targets"]:
            unknown = metric_names(target["expr"]) - known
            assert not unknown, f"{name}: {panel['title']!r} queries unknown metrics {sorted(unknown)} (typo?)"


# --- the metric name extractor itself ----------------------------------------------------------


@pytest.mark.parametrize("expr, names", [
    ("sum by (instance) (rate(http_requests_total[1m]))", {"http_requests_total"}),
    ('histogram_quantile(0.95, sum by (le, instance) (rate(http_request_duration_seconds_bucket{route!~"/health.*"}[5m])))',
     {"http_request_duration_seconds_bucket"}),
    ("time() - medisys_backup_last_success_timestamp_seconds", {"medisys_backup_last_success_timestamp_seconds"}),
    ("pg_replication_lag_seconds > 5 and on (instance) pg_replication_is_replica == 1",
     {"pg_replication_lag_seconds", "pg_replication_is_replica"}),
    ('redis_memory_used_bytes / (redis_memory_max_bytes > 0) > 1e-1 offset 5m', {"redis_memory_used_bytes", "redis_memory_max_bytes"}),
    ('absent(up{job="by (x)"})', {"up"}),
])
def test_metric_names(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_a_typo_is_caught() -> None:
    known = rule_metrics() | KNOWN_EXPORTER_METRICS
    assert metric_names("sum(rate(http_request_total[5m]))") - known == {"http_request_total"}
