"""Every configuration file the program renders, accepted (and a broken variant rejected) by the
real server or tool that reads it, inside the service images the stack runs."""

from __future__ import annotations

from pathlib import Path

import pytest

import config
import placement
from components.backups import OffsiteEndpoint, agent_pg_hosts, member_pg_host, render_offsite_conf, render_pgbackrest_conf
from components.load_balancer import Backend, render_haproxy_cfg
from components.monitoring import ScrapeTargets, render_alertmanager_yml, render_blackbox_yml, render_prometheus_yml, rule_files
from components.postgres import (
    cluster_plan,
    etcd_command,
    render_patroni_secrets,
    render_patroni_yml,
    render_pg_hba,
    render_postgresql_conf,
    render_proxy_cfg,
)
from components.redis_cluster import render_redis_conf
from tests.config.conftest import run_in_image, write_tree
from tests.support.mocks import issue_test_certificates

CFG = config.load({"environment": "dev", "monitoring": {"receivers": {"critical": {"name": "pager", "webhook_url": "http://127.0.0.1:9/hook"}}}}, "dev")


def haproxy_check(tmp_path: Path, text: str):
    certs = issue_test_certificates("localhost", ["localhost"], ["127.0.0.1"])
    root = write_tree(tmp_path / "haproxy", {"haproxy.cfg": text})
    # The certificate where the edge-config job's release puts it (components/load_balancer.py).
    release = write_tree(tmp_path / "release", {"server.pem": certs["cert"] + certs["key"]})
    return run_in_image("haproxy", "haproxy -c -V -f /etc/haproxy/haproxy.cfg", {root: "/etc/haproxy", release: "/var/lib/haproxy/current"})


def rendered_haproxy() -> str:
    return render_haproxy_cfg(CFG.load_balancer, Backend("app", 8080, 4), CFG.networks.host("management", 10))


def test_haproxy_accepts_the_rendered_configuration(tmp_path):
    result = haproxy_check(tmp_path, rendered_haproxy())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Configuration file is valid" in result.stdout + result.stderr


def test_haproxy_check_rejects_a_broken_configuration(tmp_path):
    result = haproxy_check(tmp_path, rendered_haproxy().replace("ssl-min-ver TLSv1.2 alpn", "ssl-min-ver TLSv9 alpn"))
    assert result.returncode != 0


POSTGRES_CHECK = """
set -e
initdb -D /tmp/data -U postgres --auth-local=peer >/dev/null
install -d -m 0700 /var/lib/postgresql/tls
install -m 0600 /etc/postgresql/tls/server.key /var/lib/postgresql/tls/server.key
pg_ctl -D /tmp/data -w -l /tmp/log -o "-c config_file=/etc/postgresql/postgresql.conf -c archive_command=/bin/true" start >/dev/null \
  || { cat /tmp/log; exit 1; }
q() { psql -h /var/run/postgresql -U postgres -d postgres -qAt -c "$1"; }
echo "settings_errors=$(q 'SELECT count(*) FROM pg_file_settings WHERE error IS NOT NULL')"
echo "hba_errors=$(q 'SELECT count(*) FROM pg_hba_file_rules WHERE error IS NOT NULL')"
echo "hba_types=$(q "SELECT string_agg(DISTINCT type, ',') FROM pg_hba_file_rules")"
echo "ssl=$(q 'SHOW ssl')"
echo "shared_buffers=$(q 'SHOW shared_buffers')"
echo "preload=$(q 'SHOW shared_preload_libraries')"
pg_ctl -D /tmp/data -w stop >/dev/null
"""


def postgres_check(tmp_path: Path, conf: str):
    certs = issue_test_certificates("pg", ["pg"], ["127.0.0.1"])
    root = write_tree(
        tmp_path / "postgresql",
        {
            "postgresql.conf": conf,
            "pg_hba.conf": render_pg_hba(CFG.networks.database),
            "tls/server.crt": certs["cert"],
            "tls/server.key": certs["key"],
            "tls/ca.crt": certs["ca"],
        },
    )
    result = run_in_image("postgres", POSTGRES_CHECK, {root: "/etc/postgresql"})
    values = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    return result, values


def test_postgres_starts_with_the_rendered_configuration(tmp_path):
    result, values = postgres_check(tmp_path, render_postgresql_conf(CFG.postgres))
    assert result.returncode == 0, result.stdout + result.stderr
    assert values["settings_errors"] == "0" and values["hba_errors"] == "0"
    assert values["hba_types"] == "hostssl,local"
    assert values["ssl"] == "on"
    assert values["shared_buffers"] == f"{CFG.postgres.resources.memory_mb // 4}MB"
    assert values["preload"] == "pg_stat_statements"


def test_postgres_reports_a_misspelt_setting(tmp_path):
    conf = render_postgresql_conf(CFG.postgres) + "\nshared_bufers = 64MB\n"
    result, _ = postgres_check(tmp_path, conf)
    assert result.returncode != 0


PLACEMENT = placement.plan(CFG)
PLAN = cluster_plan("medisys-dev-pg", CFG.postgres, PLACEMENT.address)
# The same plan on loopback addresses: the check runs in a container without a network, and
# Patroni's validation connects to every etcd endpoint (stand-in listeners answer there).
LOCAL_PLAN = cluster_plan("medisys-dev-pg", CFG.postgres, lambda slot, segment: f"127.0.0.{placement.HOST_NUMBERS[slot]}")
PATRONI_CHECK = """
for host in $ETCD_HOSTS; do
  python3 -c "import socket, sys, time; s = socket.socket(); s.bind((sys.argv[1], 2379)); s.listen(); time.sleep(60)" "$host" &
done
sleep 1
patroni --validate-config /etc/patroni
"""


def patroni_check(tmp_path: Path, patroni_yml: str):
    secrets = render_patroni_secrets("superuser-pw", "replication-pw", "rewind-pw", "api-pw")
    root = write_tree(tmp_path / "patroni", {"10-patroni.yml": patroni_yml, "20-secrets.yml": secrets})
    hosts = " ".join(address for _, address in LOCAL_PLAN.etcd)
    # --validate-config checks every section against Patroni's schema: types, paths, binaries, endpoints.
    return run_in_image("postgres", f"export ETCD_HOSTS='{hosts}'\n{PATRONI_CHECK}", {root: "/etc/patroni"})


@pytest.mark.parametrize("synchronous", [False, True])
def test_patroni_validates_the_rendered_member_configuration(tmp_path, synchronous):
    settings = CFG.postgres.model_copy(update={"failover": CFG.postgres.failover.model_copy(update={"synchronous": synchronous})})
    result = patroni_check(tmp_path, render_patroni_yml(settings, LOCAL_PLAN, 1))
    assert result.returncode == 0, result.stdout + result.stderr


def test_patroni_rejects_a_broken_configuration(tmp_path):
    broken = render_patroni_yml(CFG.postgres, LOCAL_PLAN, 1).replace("loop_wait: 5", "loop_wait: soon")
    result = patroni_check(tmp_path, broken)
    assert result.returncode != 0
    assert "loop_wait" in result.stdout + result.stderr


def proxy_check(tmp_path: Path, text: str):
    certs = issue_test_certificates("pg", ["pg"], ["127.0.0.1"])
    root = write_tree(tmp_path / "pgproxy", {"haproxy.cfg": text, "ca.crt": certs["ca"]})
    return run_in_image("haproxy", "haproxy -c -V -f /etc/haproxy/haproxy.cfg", {root: "/etc/haproxy"})


def test_haproxy_accepts_the_rendered_database_endpoint(tmp_path):
    result = proxy_check(tmp_path, render_proxy_cfg(PLAN))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Configuration file is valid" in result.stdout + result.stderr


def test_haproxy_rejects_a_broken_database_endpoint(tmp_path):
    result = proxy_check(tmp_path, render_proxy_cfg(PLAN).replace("on-marked-down shutdown-sessions", "on-marked-down shutdown-everything"))
    assert result.returncode != 0


ETCD_CHECK = """
set -e
for i in 1 2 3; do
  sh -c "$(printenv ETCD_$i)" > /tmp/etcd-$i.log 2>&1 &
done
for _ in $(seq 1 30); do
  etcdctl --endpoints=https://127.0.0.11:2379 --cacert=/etc/etcd/tls/ca.crt --cert=/etc/etcd/tls/server.crt \
    --key=/etc/etcd/tls/server.key --dial-timeout=2s --command-timeout=2s endpoint health >/dev/null 2>&1 && break
  sleep 0.5
done
etcdctl --endpoints=https://127.0.0.11:2379,https://127.0.0.12:2379,https://127.0.0.13:2379 --cacert=/etc/etcd/tls/ca.crt \
  --cert=/etc/etcd/tls/server.crt --key=/etc/etcd/tls/server.key member list -w simple | sort
echo "plain=$(etcdctl --endpoints=http://127.0.0.11:2379 --dial-timeout=2s --command-timeout=2s endpoint health >/dev/null 2>&1 && echo answered || echo refused)"
echo "no_client_cert=$(etcdctl --endpoints=https://127.0.0.11:2379 --cacert=/etc/etcd/tls/ca.crt --dial-timeout=2s --command-timeout=2s endpoint health >/dev/null 2>&1 && echo answered || echo refused)"
"""


def test_etcd_members_form_a_tls_cluster_from_the_rendered_commands(tmp_path):
    import shlex
    import subprocess

    from tests.config.conftest import image

    # The same commands on loopback addresses (the test container has no network).
    plan = cluster_plan("medisys-dev-pg", CFG.postgres, lambda slot, segment: f"127.0.0.{placement.HOST_NUMBERS[slot] - 4}")
    # etcd checks a peer's certificate against the address it connects from; here every member
    # connects from 127.0.0.1 (on the database segment each has its own address, in its certificate).
    certs = issue_test_certificates("etcd", ["etcd"], [a for _, a in plan.etcd] + ["127.0.0.1"])
    root = write_tree(tmp_path / "etcd", {"ca.crt": certs["ca"], "server.crt": certs["cert"], "server.key": certs["key"]})
    commands = [shlex.join(etcd_command(plan, member, address)).replace("/var/lib/etcd/data", f"/tmp/etcd-{i}")
                for i, (member, address) in enumerate(plan.etcd, start=1)]
    env = [arg for i, c in enumerate(commands, start=1) for arg in ("-e", f"ETCD_{i}={c}")]
    result = subprocess.run(
        ["docker", "run", "--rm", "--network", "none", "-v", f"{root}:/etc/etcd/tls:ro", *env, "--entrypoint", "sh", image("etcd"), "-c", ETCD_CHECK],
        capture_output=True, text=True, timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    members = [line for line in result.stdout.splitlines() if ", started, " in line]
    assert len(members) == 3, result.stdout + result.stderr
    assert all("https://127.0.0.1" in line for line in members)
    assert "plain=refused" in result.stdout and "no_client_cert=refused" in result.stdout


REDIS_CHECK = """
redis-server /etc/redis/redis.conf --daemonize yes --logfile /tmp/redis.log >/dev/null || { cat /tmp/redis.log; exit 1; }
for _ in $(seq 1 50); do [ -S /tmp/x ] || true; redis-cli --tls --cacert /etc/redis/tls/ca.crt -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q NOAUTH && break; sleep 0.1; done
export REDISCLI_AUTH=$(sed -n 's/^requirepass //p' /etc/redis/secrets.conf)
cli() { redis-cli --tls --cacert /etc/redis/tls/ca.crt -h 127.0.0.1 -p 6379 "$@"; }
echo "ping=$(cli ping)"
echo "maxmemory=$(cli config get maxmemory | tail -n 1)"
echo "policy=$(cli config get maxmemory-policy | tail -n 1)"
echo "cluster=$(cli config get cluster-enabled | tail -n 1)"
echo "aof=$(cli config get appendonly | tail -n 1)"
echo "plain_port=$(cli config get port | tail -n 1)"
cat /tmp/redis.log | grep -c 'FATAL' | sed 's/^/fatal=/'
"""


def redis_check(tmp_path: Path, conf: str):
    certs = issue_test_certificates("redis", ["redis"], ["127.0.0.1"])
    root = write_tree(
        tmp_path / "redis",
        {
            "redis.conf": conf,
            "secrets.conf": "requirepass test-password\nmasterauth test-password\n",
            "tls/server.crt": certs["cert"],
            "tls/server.key": certs["key"],
            "tls/ca.crt": certs["ca"],
        },
    )
    result = run_in_image("redis", REDIS_CHECK, {root: "/etc/redis"})
    return result, dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)


def test_redis_serves_tls_with_the_rendered_configuration(tmp_path):
    result, values = redis_check(tmp_path, render_redis_conf(CFG.redis, node_name="node-1", announce_ip="10.0.2.31"))
    assert values.get("ping") == "PONG", result.stdout + result.stderr
    assert values["maxmemory"] == str(CFG.redis.maxmemory_mb * 1024 * 1024)
    assert values["policy"] == CFG.redis.eviction_policy
    assert (values["cluster"], values["aof"], values["plain_port"]) == ("yes", "yes", "0")


def test_redis_refuses_a_broken_configuration(tmp_path):
    conf = render_redis_conf(CFG.redis, node_name="node-1", announce_ip="10.0.2.31").replace("appendonly yes", "appendonly sometimes")
    result, values = redis_check(tmp_path, conf)
    assert values.get("ping") != "PONG"
    assert "FATAL CONFIG FILE ERROR" in result.stdout + result.stderr


def scrape_targets() -> ScrapeTargets:
    return ScrapeTargets(
        load_balancers=["10.0.3.10:8404"],
        load_balancer_tls_addresses=["https://10.0.3.10:443/health"],
        load_balancer_server_name="localhost",
        app_servers=[("app-1", "10.0.3.21:8080"), ("app-2", "10.0.3.22:8080")],
        postgres_servers=["10.0.2.10:5432", "10.0.2.11:5432"],  # every member
        postgres_database="medisys",
        postgres_user="medisys_monitoring",
        postgres_password=None,  # type: ignore[arg-type]  # rendering never reads secrets
        redis_nodes=["10.0.2.31:6379", "10.0.2.32:6379", "10.0.2.33:6379"],
        redis_password=None,  # type: ignore[arg-type]
        backup_agent="10.0.3.40:9854",
        ca_cert_pem="",
    )


def prometheus_tree(tmp_path: Path, prometheus_yml: str) -> Path:
    files = {"prometheus.yml": prometheus_yml}
    files |= {f"rules/{Path(f.path).name}": f.content for f in rule_files()}  # type: ignore[misc]
    return write_tree(tmp_path / "prometheus", files)


def test_promtool_accepts_the_rendered_prometheus_configuration(tmp_path):
    root = prometheus_tree(tmp_path, render_prometheus_yml(CFG.monitoring, scrape_targets(), PLACEMENT.address))
    result = run_in_image("prometheus", "promtool check config /etc/prometheus/prometheus.yml", {root: "/etc/prometheus"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_rejects_a_broken_prometheus_configuration(tmp_path):
    broken = render_prometheus_yml(CFG.monitoring, scrape_targets(), PLACEMENT.address).replace("scrape_interval: 15s", "scrape_interval: soon")
    root = prometheus_tree(tmp_path, broken)
    result = run_in_image("prometheus", "promtool check config /etc/prometheus/prometheus.yml", {root: "/etc/prometheus"})
    assert result.returncode != 0


def test_amtool_accepts_the_rendered_alertmanager_configuration(tmp_path):
    root = write_tree(tmp_path / "am", {"alertmanager.yml": render_alertmanager_yml(CFG.monitoring)})
    result = run_in_image("alertmanager", "amtool check-config /etc/alertmanager/alertmanager.yml", {root: "/etc/alertmanager"})
    assert result.returncode == 0, result.stdout + result.stderr
    routes = run_in_image(
        "alertmanager",
        "amtool config routes test --config.file=/etc/alertmanager/alertmanager.yml severity=critical",
        {root: "/etc/alertmanager"},
    )
    assert routes.stdout.strip() == "pager"


def test_blackbox_exporter_accepts_its_rendered_configuration(tmp_path):
    certs = issue_test_certificates("localhost", ["localhost"], [])
    root = write_tree(tmp_path / "bb", {"blackbox.yml": render_blackbox_yml("localhost"), "ca.crt": certs["ca"]})
    script = "prometheus-blackbox-exporter --config.check --config.file=/etc/blackbox/blackbox.yml"
    result = run_in_image("prometheus", script, {root: "/etc/blackbox"})
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("servers", [member_pg_host(2), agent_pg_hosts(3)], ids=["member", "agent"])
def test_pgbackrest_accepts_the_rendered_configuration_and_rejects_unknown_options(tmp_path, servers):
    good = render_pgbackrest_conf(CFG.backups, servers, OffsiteEndpoint("10.0.4.50", 2222, "pgbackrest", "/srv/pgbackrest"))
    offsite = render_offsite_conf("y", "0" * 64)
    bad = (good.replace("repo1-retention-full=", "repo1-retention-fulll="), good.replace("repo2-sftp-host-port=", "repo2-sftp-port="))
    for name, text, ok in (("good", good, True), ("bad1", bad[0], False), ("bad2", bad[1], False)):
        files = {"pgbackrest.conf": text, "conf.d/cipher.conf": "[global]\nrepo1-cipher-pass=x\n", "conf.d/offsite.conf": offsite}
        root = write_tree(tmp_path / name, files)
        # No network here: the offsite repository cannot answer; io-timeout=1 keeps its retries short.
        script = ("pgbackrest --config=/etc/pgbackrest/pgbackrest.conf --config-include-path=/etc/pgbackrest/conf.d --stanza=main"
                  " --io-timeout=1 --output=json info")
        result = run_in_image("postgres", script, {root: "/etc/pgbackrest"})
        output = result.stdout + result.stderr
        assert ("invalid option" in output or "unknown option" in output) is not ok, output


def test_pgbackrest_pushes_wal_asynchronously_and_gets_it_synchronously(tmp_path):
    """pgBackRest's own reading of the rendered file: archive-push async (an unreachable offsite
    repository does not hold back the local one), archive-get as before (restores and replicas)."""
    conf = render_pgbackrest_conf(CFG.backups, member_pg_host(1), OffsiteEndpoint("10.0.4.50", 2222, "pgbackrest", "/srv/pgbackrest"))
    root = write_tree(tmp_path / "async", {"pgbackrest.conf": conf, "conf.d/cipher.conf": "[global]\nrepo1-cipher-pass=x\n",
                                           "conf.d/offsite.conf": render_offsite_conf("y", "0" * 64)})
    base = "pgbackrest --config=/etc/pgbackrest/pgbackrest.conf --config-include-path=/etc/pgbackrest/conf.d --stanza=main help"
    push = run_in_image("postgres", f"{base} archive-push archive-async", {root: "/etc/pgbackrest"})
    get = run_in_image("postgres", f"{base} archive-get archive-async", {root: "/etc/pgbackrest"})
    assert push.returncode == 0 and "current: true" in push.stdout, push.stdout + push.stderr
    timeout = run_in_image("postgres", f"{base} archive-push io-timeout", {root: "/etc/pgbackrest"})
    assert "current: 15" in timeout.stdout, timeout.stdout + timeout.stderr
    assert get.returncode == 0 and "current:" not in get.stdout, get.stdout + get.stderr
