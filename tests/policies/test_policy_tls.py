"""TLS policies: load balancer, load balancer to the app servers, PostgreSQL, Redis, Grafana."""

from __future__ import annotations

import base64

import policy_testkit as kit
import pytest
from policy_testkit import assert_violation, container, run_resource, with_upload

LB = kit.policy_named("tls-load-balancer-https-only")
APP_TLS = kit.policy_named("tls-app-backend-verified")
PG = kit.policy_named("tls-postgres-ssl-on")
REDIS = kit.policy_named("tls-redis-clients")
GRAFANA = kit.policy_named("tls-grafana-access")
HAPROXY = "/etc/haproxy/haproxy.cfg"


def lb_with(cfg: str) -> list[str]:
    props = with_upload(container("load-balancer"), HAPROXY, cfg)
    return run_resource(LB, props, name="lb")


# --- load balancer -----------------------------------------------------------------------------


def test_compliant_load_balancer_passes() -> None:
    assert run_resource(LB, container("load-balancer"), name="lb") == []


def test_other_roles_are_not_checked_by_the_load_balancer_policy() -> None:
    assert run_resource(LB, container("app"), name="app") == []


def test_ssl_bind_without_min_version_fails() -> None:
    cfg = kit.HAPROXY_CFG.replace(" ssl-min-ver TLSv1.2 no-tls-tickets", "").replace(
        " ssl-min-ver TLSv1.2 alpn", " alpn"
    )
    message = assert_violation(lb_with(cfg), "lb", "https-in", "below TLSv1.2")
    assert "add 'ssl-min-ver TLSv1.2'" in message


def test_global_default_min_version_covers_binds() -> None:
    cfg = kit.HAPROXY_CFG.replace(" ssl-min-ver TLSv1.2 alpn", " alpn")
    assert lb_with(cfg) == []


def test_tls_1_0_on_a_bind_fails() -> None:
    cfg = kit.HAPROXY_CFG.replace("ssl-min-ver TLSv1.2 alpn", "ssl-min-ver TLSv1.0 alpn")
    assert_violation(lb_with(cfg), "lb", "ssl-min-ver is TLSv1.0")


def test_forced_old_protocol_fails() -> None:
    cfg = kit.HAPROXY_CFG.replace("alpn h2", "force-tlsv11 alpn h2")
    assert_violation(lb_with(cfg), "lb", "obsolete protocol", "force-tlsv11")


def test_plain_http_frontend_serving_content_fails() -> None:
    cfg = kit.HAPROXY_CFG.replace(
        "http-request redirect scheme https code 301", "default_backend app"
    )
    message = assert_violation(lb_with(cfg), "lb", "http-in", "plain HTTP")
    assert "redirect scheme https" in message


def test_plain_tcp_frontend_fails() -> None:
    cfg = (
        kit.HAPROXY_CFG + "\nfrontend pg\n    mode tcp\n    bind *:5432\n    default_backend app\n"
    )
    assert_violation(lb_with(cfg), "lb", "'pg'", "plain-text TCP")


def test_stats_frontend_on_wildcard_address_fails() -> None:
    cfg = kit.HAPROXY_CFG.replace("bind 10.40.0.10:8404", "bind *:8404")
    assert_violation(lb_with(cfg), "lb", "stats", "wildcard")


def test_missing_hsts_fails() -> None:
    cfg = "\n".join(line for line in kit.HAPROXY_CFG.splitlines() if "Strict-Transport" not in line)
    message = assert_violation(lb_with(cfg), "lb", "Strict-Transport-Security")
    assert "http-response set-header Strict-Transport-Security" in message


def test_hsts_in_every_routed_backend_is_accepted() -> None:
    lines = [line for line in kit.HAPROXY_CFG.splitlines() if "Strict-Transport" not in line]
    cfg = (
        "\n".join(lines)
        + '\n    http-response set-header Strict-Transport-Security "max-age=31536000"\n'
    )
    assert lb_with(cfg) == []


def test_short_hsts_max_age_fails() -> None:
    cfg = kit.HAPROXY_CFG.replace("max-age=63072000", "max-age=300")
    assert_violation(lb_with(cfg), "lb", "max-age >= 15552000")


def test_hsts_threshold_comes_from_config() -> None:
    props = container("load-balancer")
    messages = run_resource(LB, props, name="lb", config={"minHstsMaxAgeSeconds": 99999999})
    assert_violation(messages, "lb", "max-age >= 99999999")


def test_no_tls_frontend_fails() -> None:
    cfg = (
        "defaults\n  mode http\n"
        "frontend http-in\n  bind *:80\n  http-request redirect scheme https\n"
    )
    assert_violation(lb_with(cfg), "lb", "no frontend that terminates TLS")


def test_missing_haproxy_upload_fails_closed() -> None:
    props = container("load-balancer-config", uploads=[])
    message = assert_violation(run_resource(LB, props, name="lb"), "lb", "no upload of")
    assert "/etc/haproxy/haproxy.cfg" in message


def test_haproxy_without_config_or_edge_release_fails_closed() -> None:
    props = container("load-balancer", uploads=[], command=["haproxy", "-W", "-f", "/tmp/other.cfg"])
    message = assert_violation(run_resource(LB, props, name="lb"), "lb", "neither an uploaded")
    assert "/var/lib/haproxy/current/haproxy.cfg" in message


def test_haproxy_running_the_edge_release_is_judged_through_its_config_job() -> None:
    props = container("load-balancer", uploads=[], command=["haproxy", "-W", "-f", "/var/lib/haproxy/current/haproxy.cfg"])
    assert run_resource(LB, props, name="lb") == []


def test_haproxy_cfg_from_host_file_cannot_be_verified() -> None:
    props = container("load-balancer", uploads=[{"file": HAPROXY, "source": "/tmp/haproxy.cfg"}])
    assert_violation(run_resource(LB, props, name="lb"), "lb", "not uploaded as literal")


def test_base64_upload_is_read() -> None:
    encoded = base64.b64encode(kit.HAPROXY_CFG.encode()).decode()
    props = container("load-balancer", uploads=[{"file": HAPROXY, "contentBase64": encoded}])
    assert run_resource(LB, props, name="lb") == []


# --- load balancer to the app servers -----------------------------------------------------------

TLS_DEFAULTS = "    default-server ssl verify required ca-file /etc/haproxy/certs/app-ca.crt verifyhost app check-ssl\n"
RELEASE_CA = "/var/lib/haproxy/current/app-ca.crt"


def app_tls_with(cfg: str, role: str = "load-balancer-config", **overrides) -> list[str]:
    props = with_upload(container(role, **overrides), HAPROXY, cfg)
    return run_resource(APP_TLS, props, name="lb")


def backend_with(server_options: str) -> str:
    """The baseline config with the backend's default-server options replaced."""
    return kit.HAPROXY_CFG.replace(TLS_DEFAULTS, f"    default-server {server_options}\n" if server_options else "")


@pytest.mark.parametrize("role", ["load-balancer", "load-balancer-config", "app"])
def test_compliant_edge_and_app_servers_pass_the_app_backend_policy(role: str) -> None:
    assert run_resource(APP_TLS, container(role), name=role) == []


def test_the_app_backend_policy_ignores_other_roles() -> None:
    assert run_resource(APP_TLS, container("postgres-proxy"), name="pgproxy") == []


def test_plain_backend_fails() -> None:
    message = assert_violation(app_tls_with(backend_with("")), "lb", "server 'app1'", "plain text")
    assert "ssl verify required ca-file" in message
    assert len(app_tls_with(backend_with(""))) == 2  # one per server line


def test_server_line_turning_verification_off_fails() -> None:
    cfg = kit.HAPROXY_CFG.replace("server app2 10.20.0.12:8000 check", "server app2 10.20.0.12:8000 check verify none")
    messages = app_tls_with(cfg)
    assert_violation(messages, "lb", "server 'app2'", "does not verify", "verify none")
    assert len(messages) == 1


def test_ssl_without_verify_required_fails() -> None:
    messages = app_tls_with(backend_with("ssl ca-file /etc/haproxy/certs/app-ca.crt verifyhost app"))
    assert_violation(messages, "lb", "server 'app1'", "'verify required' is missing")


def test_missing_ca_file_fails() -> None:
    messages = app_tls_with(backend_with("ssl verify required verifyhost app"))
    assert_violation(messages, "lb", "server 'app1'", "no ca-file")


def test_system_ca_store_fails() -> None:
    messages = app_tls_with(backend_with("ssl verify required ca-file @system-ca verifyhost app"))
    assert_violation(messages, "lb", "server 'app1'", "system CA store")


def test_ca_file_the_container_does_not_ship_fails() -> None:
    messages = app_tls_with(backend_with("ssl verify required ca-file /etc/ssl/other.crt verifyhost app"))
    assert_violation(messages, "lb", "server 'app1'", "neither uploaded")


def test_ca_file_installed_with_the_edge_release_passes() -> None:
    cfg = backend_with(f"ssl verify required ca-file {RELEASE_CA} verifyhost app check-ssl")
    env = ["RELEASE_FILES=/etc/haproxy/haproxy.cfg=haproxy.cfg /etc/haproxy/certs/app-ca.crt=app-ca.crt"]
    assert app_tls_with(cfg, envs=env) == []


def test_ca_file_missing_from_the_edge_release_fails() -> None:
    cfg = backend_with(f"ssl verify required ca-file {RELEASE_CA} verifyhost app")
    env = ["RELEASE_FILES=/etc/haproxy/haproxy.cfg=haproxy.cfg"]
    assert_violation(app_tls_with(cfg, envs=env), "lb", "server 'app1'", "neither uploaded")


def test_no_hostname_check_fails_unless_relaxed() -> None:
    cfg = backend_with("ssl verify required ca-file /etc/haproxy/certs/app-ca.crt")
    assert_violation(app_tls_with(cfg), "lb", "server 'app1'", "no verifyhost or sni")
    props = with_upload(container("load-balancer-config"), HAPROXY, cfg)
    assert run_resource(APP_TLS, props, name="lb", config={"requireHostnameVerification": False}) == []


def test_sni_counts_as_a_hostname_check() -> None:
    assert app_tls_with(backend_with("ssl verify required ca-file /etc/haproxy/certs/app-ca.crt sni str(app)")) == []


def test_plain_health_checks_fail() -> None:
    cfg = kit.HAPROXY_CFG.replace("server app1 10.20.0.11:8000 check", "server app1 10.20.0.11:8000 check no-check-ssl")
    assert_violation(app_tls_with(cfg), "lb", "server 'app1'", "no-check-ssl")


def test_options_in_a_defaults_section_are_inherited() -> None:
    cfg = backend_with("").replace("defaults\n    mode http\n", "defaults\n    mode http\n" + TLS_DEFAULTS)
    assert app_tls_with(cfg) == []


def test_global_ssl_server_verify_none_fails() -> None:
    cfg = kit.HAPROXY_CFG.replace("global\n", "global\n    ssl-server-verify none\n")
    assert_violation(app_tls_with(cfg), "lb", "ssl-server-verify none")


def test_server_template_options_are_read_after_its_address() -> None:
    backend = "    server app1 10.20.0.11:8000 check\n    server app2 10.20.0.12:8000 check\n"
    template = "    server-template app 4 app:8080 ssl verify required ca-file /etc/haproxy/certs/app-ca.crt verifyhost app check\n"
    assert app_tls_with(backend_with("").replace(backend, template)) == []
    plain = "    server-template app 4 app:8080 check\n"
    assert_violation(app_tls_with(backend_with("").replace(backend, plain)), "lb", "server 'app'", "plain text")


def test_haproxy_without_backend_servers_cannot_be_verified() -> None:
    cfg = "\n".join(line for line in kit.HAPROXY_CFG.splitlines() if not line.strip().startswith("server "))
    assert_violation(app_tls_with(cfg), "lb", "no backend server line")


def test_haproxy_running_the_edge_release_with_verification_off_fails() -> None:
    command = ["haproxy", "-W", "-dV", "-f", "/var/lib/haproxy/current/haproxy.cfg"]
    props = container("load-balancer", uploads=[], command=command)
    assert_violation(run_resource(APP_TLS, props, name="lb"), "lb", "-dV")
    props["command"] = [c for c in command if c != "-dV"]
    assert run_resource(APP_TLS, props, name="lb") == []


@pytest.mark.parametrize("variable", ["APP_TLS_CERT_FILE", "APP_TLS_KEY_FILE"])
def test_app_server_without_its_certificate_fails(variable: str) -> None:
    props = container("app")
    props["envs"] = [e for e in props["envs"] if not e.startswith(variable + "=")]
    message = assert_violation(run_resource(APP_TLS, props, name="app"), "app", f"without {variable}", "plain HTTP")
    assert "internal CA" in message


def test_app_server_certificate_that_is_not_uploaded_fails() -> None:
    props = container("app")
    props["uploads"] = [u for u in props["uploads"] if u["file"] != "/run/secrets/server.key"]
    assert_violation(run_resource(APP_TLS, props, name="app"), "app", "APP_TLS_KEY_FILE names a file that is not uploaded")


# --- postgres ----------------------------------------------------------------------------------

PG_CONF = "/etc/postgresql/postgresql.conf"
HBA = "/etc/postgresql/pg_hba.conf"


def test_compliant_postgres_primary_and_replica_pass() -> None:
    assert run_resource(PG, container("postgres"), name="pg") == []
    assert run_resource(PG, container("postgres"), name="pg") == []


def test_ssl_off_fails() -> None:
    props = with_upload(container("postgres"), PG_CONF, "ssl = off\n")
    assert_violation(run_resource(PG, props, name="pg"), "pg", "ssl = on")


def test_postgres_min_tls_version_too_low_fails() -> None:
    conf = kit.POSTGRESQL_CONF.replace("'TLSv1.2'", "'TLSv1.1'")
    props = with_upload(container("postgres"), PG_CONF, conf)
    assert_violation(
        run_resource(PG, props, name="pg"), "pg", "ssl_min_protocol_version is TLSv1.1"
    )


def test_host_and_trust_lines_fail() -> None:
    hba = kit.PG_HBA_CONF + "host all all 0.0.0.0/0 scram-sha-256\nlocal all all trust\n"
    messages = run_resource(PG, with_upload(container("postgres"), HBA, hba), name="pg")
    assert_violation(messages, "pg", "line 5", "'host' rule")
    assert_violation(messages, "pg", "line 6", "'trust'")
    assert len(messages) == 2


def test_md5_on_hostssl_fails() -> None:
    hba = kit.PG_HBA_CONF.replace(
        "replicator  10.30.0.0/24   scram-sha-256", "replicator 10.30.0.0/24 md5"
    )
    messages = run_resource(PG, with_upload(container("postgres"), HBA, hba), name="pg")
    assert_violation(messages, "pg", "'md5' on a hostssl rule", "scram-sha-256")


def test_hba_include_cannot_be_verified() -> None:
    hba = kit.PG_HBA_CONF + "include_dir conf.d\n"
    messages = run_resource(PG, with_upload(container("postgres"), HBA, hba), name="pg")
    assert_violation(messages, "pg", "includes another file")


def test_missing_pg_hba_upload_fails() -> None:
    props = container("postgres")
    props["uploads"] = [u for u in props["uploads"] if u["file"] != HBA]
    assert_violation(
        run_resource(PG, props, name="pg"), "pg", "no upload of /etc/postgresql/pg_hba.conf"
    )


# --- redis -------------------------------------------------------------------------------------

REDIS_CONF = "/etc/redis/redis.conf"


def redis_with(conf: str) -> list[str]:
    return run_resource(REDIS, with_upload(container("redis"), REDIS_CONF, conf), name="r1")


def test_compliant_redis_passes() -> None:
    assert run_resource(REDIS, container("redis"), name="r1") == []


def test_plain_port_open_fails() -> None:
    assert_violation(redis_with(kit.REDIS_CONF.replace("port 0\n", "")), "r1", "'port 0'")


def test_no_tls_port_fails() -> None:
    assert_violation(redis_with(kit.REDIS_CONF.replace("tls-port 6379\n", "")), "r1", "no tls-port")


def test_optional_client_certs_pass_by_default() -> None:
    conf = kit.REDIS_CONF.replace("tls-auth-clients yes", "tls-auth-clients optional")
    assert redis_with(conf) == []


def test_optional_client_certs_fail_when_client_certificates_are_required() -> None:
    conf = kit.REDIS_CONF.replace("tls-auth-clients yes", "tls-auth-clients optional")
    props = with_upload(container("redis"), REDIS_CONF, conf)
    messages = run_resource(REDIS, props, name="r1", config={"requireClientCertificates": True})
    assert_violation(messages, "r1", "client certificates")


def test_replication_and_cluster_bus_without_tls_fail() -> None:
    conf = kit.REDIS_CONF.replace("tls-replication yes", "tls-replication no").replace(
        "tls-cluster yes", ""
    )
    messages = redis_with(conf)
    assert_violation(messages, "r1", "replicates without TLS")
    assert_violation(messages, "r1", "cluster bus without TLS")


def test_replication_requirement_can_be_relaxed_by_config() -> None:
    conf = kit.REDIS_CONF.replace("tls-replication yes", "")
    props = with_upload(container("redis"), REDIS_CONF, conf)
    config = {"requireTlsReplication": False}
    assert run_resource(REDIS, props, name="r1", config=config) == []


# --- grafana -----------------------------------------------------------------------------------


def test_compliant_grafana_passes() -> None:
    assert run_resource(GRAFANA, container("grafana"), name="grafana") == []


def test_grafana_with_published_port_fails() -> None:
    props = container("grafana", ports=[{"internal": 3000, "external": 3000, "ip": "127.0.0.1"}])
    message = assert_violation(
        run_resource(GRAFANA, props, name="grafana"), "grafana", "publishes 1 port"
    )
    assert "load balancer" in message


def test_grafana_on_the_dmz_fails() -> None:
    props = container("grafana")
    props["networksAdvanced"] = props["networksAdvanced"] + [{"name": f"{kit.PREFIX}-dmz"}]
    messages = run_resource(GRAFANA, props, name="grafana")
    assert_violation(messages, "grafana", "medisys-prod-dmz", "outside the management segment")


def test_grafana_without_networks_fails() -> None:
    props = container("grafana", networksAdvanced=[])
    assert_violation(run_resource(GRAFANA, props, name="grafana"), "grafana", "not attached")


def test_grafana_host_network_mode_fails() -> None:
    props = container("grafana", networkMode="host")
    assert_violation(run_resource(GRAFANA, props, name="grafana"), "grafana", "networkMode 'host'")
