"""Configuration errors: each names the field and the fix, all are reported at once, before any
resource exists."""

from __future__ import annotations

import pytest

import config


def error_for(raw: dict, stack: str = "dev") -> str:
    with pytest.raises(config.ConfigError) as caught:
        config.load({"environment": "dev", **raw}, stack)
    return str(caught.value)


def test_defaults_are_the_operations_manual_subnets():
    cfg = config.load({"environment": "dev"}, "dev")
    assert (str(cfg.networks.dmz), str(cfg.networks.production), str(cfg.networks.database), str(cfg.networks.management)) == (
        "192.168.1.0/24", "10.0.1.0/24", "10.0.2.0/24", "10.0.3.0/24")
    assert cfg.name_prefix == "medisys-dev"


@pytest.mark.parametrize("count", [1, 5])
def test_app_server_count_outside_two_to_four_is_refused(count):
    message = error_for({"app": {"count": count}})
    assert "medisys:app.count" in message and "Pulumi.dev.yaml" in message


def test_a_redis_cluster_needs_three_masters():
    assert "medisys:redis.masters" in error_for({"redis": {"masters": 2}})


def test_redis_defaults_to_three_masters_with_a_replica_each():
    redis = config.load({"environment": "dev"}, "dev").redis
    assert (redis.masters, redis.replicas_per_master, redis.node_count) == (3, 1, 6)


def test_the_old_redis_nodes_setting_is_refused_with_its_new_names():
    message = error_for({"redis": {"nodes": 3}})
    assert "medisys:redis" in message and "'masters: 3'" in message and "'replicas_per_master: 1'" in message


def test_redis_nodes_beyond_the_address_plan_are_refused():
    message = error_for({"redis": {"masters": 5, "replicas_per_master": 1}})
    assert "medisys:redis" in message and "10 nodes" in message and "room for 9" in message


def test_prod_requires_a_redis_replica_per_master():
    with pytest.raises(config.ConfigError) as caught:
        config.load({"environment": "prod", "load_balancer": {"certificate": {"mode": "provided"}},
                     "redis": {"replicas_per_master": 0}, "hosts": THREE_HOSTS, "postgres": PROD["postgres"]}, "prod")
    assert "redis.replicas_per_master must be 1 or more in prod" in str(caught.value)


def test_redis_maxmemory_must_leave_headroom_in_the_container():
    message = error_for({"redis": {"maxmemory_mb": 250, "resources": {"memory_mb": 256, "cpus": 0.5}}})
    assert "medisys:redis" in message and "80%" in message


def test_overlapping_subnets_are_refused_with_both_names():
    message = error_for({"networks": {"database": "10.0.1.0/25"}})
    assert "production" in message and "database" in message and "overlap" in message


def test_a_subnet_too_small_for_the_address_plan_is_refused():
    assert "medisys:networks.management" in error_for({"networks": {"management": "10.0.3.0/28"}})


def test_an_unknown_key_is_refused_not_ignored():
    assert "medisys:app.replicas" in error_for({"app": {"replicas": 3}})


def test_an_unpinned_image_override_is_refused():
    message = error_for({"images": {"overrides": {"app": "registry.example/app:latest"}}})
    assert "medisys:images.overrides" in message and "pinned" in message


def test_prod_requires_a_provided_edge_certificate():
    with pytest.raises(config.ConfigError) as caught:
        config.load({"environment": "prod"}, "prod")
    assert "certificate.mode must be 'provided' in prod" in str(caught.value)


def test_every_problem_is_reported_at_once():
    message = error_for({"app": {"count": 9}, "redis": {"masters": 1}, "backups": {"retention_days": 0}, "postgres": {"replicas": 0}})
    assert "4 problem(s)" in message
    for field in ("medisys:app.count", "medisys:redis.masters", "medisys:backups.retention_days", "medisys:postgres.replicas"):
        assert field in message


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"backups": {"full_interval_hours": 48}}, "medisys:backups.full_interval_hours"),
        ({"redis": {"eviction_policy": "random"}}, "medisys:redis.eviction_policy"),
        ({"monitoring": {"receivers": {"critical": {"name": "pager", "webhook_url": "ftp://x"}}}}, "webhook_url"),
        ({"load_balancer": {"https_port": 8080, "http_port": 8080}}, "must differ"),
        ({"postgres": {"database": "Bad-Name"}}, "medisys:postgres.database"),
        ({"app": {"resources": {"memory_mb": 16, "cpus": 0.5}}}, "medisys:app.resources.memory_mb"),
    ],
)
def test_each_range_is_validated(raw, field):
    assert field in error_for(raw)


def test_the_three_stack_files_are_valid_configurations():
    import yaml

    from tests.support.engine import ROOT

    for stack in ("dev", "staging", "prod"):
        document = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
        raw = {key.split(":", 1)[1]: value for key, value in document.items() if key.startswith("medisys:")}
        cfg = config.load(raw, stack)
        assert cfg.environment == stack
    assert config.load({"environment": "prod", **{k.split(":", 1)[1]: v for k, v in yaml.safe_load(
        (ROOT / "Pulumi.prod.yaml").read_text())["config"].items() if k.startswith("medisys:")}}, "prod").backups.retention_days == 30


def test_failover_timing_follows_patronis_rule_and_minimums():
    message = error_for({"postgres": {"failover": {"ttl_seconds": 20, "loop_wait_seconds": 15, "retry_timeout_seconds": 5}}})
    assert "medisys:postgres.failover" in message and "must not exceed ttl_seconds (20)" in message
    message = error_for({"postgres": {"failover": {"ttl_seconds": 10}}})
    assert "medisys:postgres.failover.ttl_seconds" in message


def test_prod_stack_runs_synchronous_replication_with_a_replica():
    import yaml

    from config import load

    raw = {k.removeprefix("medisys:"): v for k, v in yaml.safe_load(open("Pulumi.prod.yaml"))["config"].items() if k.startswith("medisys:")}
    postgres = load({"environment": "prod", "postgres": raw["postgres"], "hosts": raw["hosts"]}
                    | {"load_balancer": {"certificate": {"mode": "provided"}}}, "prod").postgres
    assert postgres.failover.synchronous is True and postgres.members >= 2


THREE_HOSTS = [{"name": f"h{i}", "docker_host": f"ssh://deploy@h{i}.example"} for i in (1, 2, 3)]
PROD = {"environment": "prod", "load_balancer": {"certificate": {"mode": "provided"}}, "hosts": THREE_HOSTS,
        "postgres": {"admin_publish": "127.0.0.1", "admin_host": "127.0.0.1", "admin_port": 15432}}


def test_grafana_is_on_by_default_outside_dev():
    assert config.load({"environment": "dev"}, "dev").grafana_enabled is False
    assert config.load({"environment": "staging"}, "staging").grafana_enabled is True
    assert config.load(PROD, "prod").grafana_enabled is True
    assert config.load({"environment": "staging"}, "staging").images.ref("grafana") == config.GRAFANA_IMAGE


def test_prod_refuses_grafana_off_naming_the_field():
    with pytest.raises(config.ConfigError) as caught:
        config.load({**PROD, "monitoring": {"grafana": False}}, "prod")
    assert "monitoring.grafana must be on in prod" in str(caught.value) and "Pulumi.prod.yaml" in str(caught.value)
    assert config.load({"environment": "staging", "monitoring": {"grafana": False}}, "staging").grafana_enabled is False


def test_grafana_outside_dev_must_be_pinned_by_digest():
    with pytest.raises(config.ConfigError) as caught:
        config.load({"environment": "staging", "images": {"overrides": {"grafana": "registry.example/grafana:12.4.5"}}}, "staging")
    assert "images.overrides.grafana" in str(caught.value) and "@sha256:" in str(caught.value)
    digest = "registry.example/grafana:12.4.5@sha256:" + "0" * 64
    assert config.load({"environment": "staging", "images": {"overrides": {"grafana": digest}}}, "staging").images.ref("grafana") == digest
    # dev may use a local tag (an image loaded by hand)
    assert config.load({"environment": "dev", "images": {"overrides": {"grafana": "local/grafana:12.4.5"}}}, "dev")


def test_the_pinned_grafana_image_is_the_official_one_by_index_digest():
    import re

    assert re.fullmatch(r"grafana/grafana:12\.4\.5@sha256:[0-9a-f]{64}", config.GRAFANA_IMAGE)


def test_an_offsite_host_without_a_pinned_host_key_is_refused():
    message = error_for({"backups": {"offsite": {"host": "backup.example.org"}}})
    assert "medisys:backups.offsite" in message and "host_key_fingerprint is required" in message and "ssh-keygen -lf" in message


def test_an_offsite_fingerprint_in_neither_form_is_refused():
    message = error_for({"backups": {"offsite": {"host": "backup.example.org", "host_key_fingerprint": "SHA1:abc"}}})
    assert "medisys:backups.offsite.host_key_fingerprint" in message and "SHA256:<base64>" in message


def test_an_offsite_fingerprint_is_accepted_as_openssh_sha256_or_hex_and_kept_as_hex():
    import base64

    digest = bytes(range(32))
    openssh = "SHA256:" + base64.b64encode(digest).decode().rstrip("=")  # what `ssh-keygen -lf` prints
    for given in (openssh, digest.hex().upper()):
        cfg = config.load({"environment": "dev", "backups": {"offsite": {"host": "h.example", "host_key_fingerprint": given}}}, "dev")
        assert cfg.backups.offsite.host_key_fingerprint == digest.hex()


def test_offsite_retention_defaults_per_stack_file():
    import yaml

    from tests.support.engine import ROOT

    days = {env: yaml.safe_load((ROOT / f"Pulumi.{env}.yaml").read_text())["config"]["medisys:backups"]["offsite"]["retention_days"]
            for env in ("dev", "staging", "prod")}
    assert days == {"dev": 7, "staging": 14, "prod": 90}
