"""Audit policy: container logs kept, PostgreSQL's connection log, HAProxy's request log."""

from __future__ import annotations

import policy_testkit as kit
from policy_testkit import assert_violation, container, run_resource, with_upload

AUDIT = kit.policy_named("audit-access-logging")
PG_CONF = "/etc/postgresql/postgresql.conf"
HAPROXY = "/etc/haproxy/haproxy.cfg"


def member_with(conf: str) -> list[str]:
    return run_resource(AUDIT, with_upload(container("postgres"), PG_CONF, conf), name="pg")


def edge_with(cfg: str) -> list[str]:
    return run_resource(AUDIT, with_upload(container("load-balancer-config"), HAPROXY, cfg), name="lb-config")


def test_compliant_containers_pass() -> None:
    for role in ("postgres", "load-balancer", "load-balancer-config", "app", "redis", "postgres-backup"):
        assert run_resource(AUDIT, container(role), name=role) == [], role


def test_a_container_whose_output_is_discarded_fails() -> None:
    message = assert_violation(run_resource(AUDIT, container("app", logDriver="none"), name="app"), "app", "log driver 'none'")
    assert "json-file" in message
    assert run_resource(AUDIT, container("app", logDriver="local"), name="app") == []


def test_unlogged_connections_and_disconnections_fail() -> None:
    for setting in ("log_connections", "log_disconnections"):
        conf = kit.POSTGRESQL_CONF.replace(f"{setting} = on", f"{setting} = off")
        assert_violation(member_with(conf), "pg", f"does not set {setting} = on")
        absent = "".join(line + "\n" for line in kit.POSTGRESQL_CONF.splitlines() if not line.startswith(setting))
        assert_violation(member_with(absent), "pg", f"does not set {setting} = on")


def test_a_log_line_prefix_that_cannot_attribute_a_line_fails() -> None:
    conf = kit.POSTGRESQL_CONF.replace("log_line_prefix = '%m [%p] %q%u@%d from %h '", "log_line_prefix = '%m [%p] '")
    message = assert_violation(member_with(conf), "pg", "leaves out who (%u), which database (%d), from where (%h or %r)")
    assert "when" not in message.split("leaves out", 1)[1].split("so", 1)[0]
    default = "".join(line + "\n" for line in kit.POSTGRESQL_CONF.splitlines() if not line.startswith("log_line_prefix"))
    assert_violation(member_with(default), "pg", "leaves out who")
    # %r (host and port) and %t (seconds) record the same facts.
    assert member_with(conf.replace("'%m [%p] '", "'%t %u@%d %r '")) == []


def test_haproxy_without_a_request_log_fails() -> None:
    no_target = kit.HAPROXY_CFG.replace("    log stdout format raw local0\n", "")
    assert_violation(edge_with(no_target), "lb-config", "no `log` target in its global section")
    no_format = kit.HAPROXY_CFG.replace("    option httplog\n", "")
    found = edge_with(no_format)
    assert_violation(found, "lb-config", "frontend 'https-in' does not log each request")
    assert_violation(edge_with(kit.HAPROXY_CFG.replace("    option httplog\n", "    option httplog\n    option dontlog-normal\n")),
                     "lb-config", "frontend 'https-in'", "drops the successful ones")
    silenced = kit.HAPROXY_CFG.replace("frontend https-in\n", "frontend https-in\n    no log\n")
    found = edge_with(silenced)
    assert len(found) == 1 and "frontend 'https-in'" in found[0]


def test_a_frontend_logging_on_its_own_counts() -> None:
    cfg = kit.HAPROXY_CFG.replace("    log global\n    option httplog\n", "")
    for name in ("http-in", "https-in", "stats"):
        cfg = cfg.replace(f"frontend {name}\n", f"frontend {name}\n    log 127.0.0.1:514 local0\n    option httplog\n")
    assert edge_with(cfg) == []


def test_haproxy_running_its_edge_release_is_judged_through_the_config_job() -> None:
    props = container("load-balancer", command=["haproxy", "-W", "-f", "/var/lib/haproxy/current/haproxy.cfg"], uploads=[])
    assert run_resource(AUDIT, props, name="lb") == []
