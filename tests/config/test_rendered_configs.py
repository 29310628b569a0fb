"""Every configuration file the program renders, accepted (and a broken variant rejected) by the
real server or tool that reads it, inside the service images the stack runs."""

from __future__ import annotations

import dataclasses
import json
import random
import secrets
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

import config
import placement
from components.app_servers import CA_PATH as APP_CA_PATH
from components.app_servers import SECRETS_DIR, SERVICE_ALIAS, AppConnections, app_environment
from components.app_servers import health_check as app_health_check
from components.load_balancer import APP_CA_PATH as EDGE_APP_CA_PATH
from components.load_balancer import Backend, render_haproxy_cfg
from components.monitoring import PROMETHEUS_CA, ScrapeTargets, render_alertmanager_yml, render_blackbox_yml, render_prometheus_yml, rule_files
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
from tests.config.conftest import image, run_in_image, write_tree
from tests.support.mocks import issue_test_certificates
from toolchain.providers.crypto import computed_outputs

CFG = config.load({"environment": "dev", "monitoring": {"receivers": {"critical": {"name": "pager", "webhook_url": "http://127.0.0.1:9/hook"}}}}, "dev")


def haproxy_check(tmp_path: Path, text: str, app_ca: bool = True):
    certs = issue_test_certificates("localhost", ["localhost"], ["127.0.0.1"])
    root = write_tree(tmp_path / "haproxy", {"haproxy.cfg": text})
    # The certificate and the app servers' CA where the edge-config job's release puts them
    # (components/load_balancer.py).
    files = {"server.pem": certs["cert"] + certs["key"], **({"app-ca.crt": certs["ca"]} if app_ca else {})}
    release = write_tree(tmp_path / "release", files)
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


def test_haproxy_reaches_the_app_servers_over_verified_tls_with_the_ca_of_the_release():
    backend = rendered_haproxy().split("\nbackend app_servers\n", 1)[1].split("\n\n", 1)[0]
    (template,) = [line.split() for line in backend.splitlines() if line.strip().startswith("server-template")]
    assert template[:4] == ["server-template", "app", "4", "app:8080"]
    options = " ".join(template[4:])
    assert "ssl verify required ca-file /var/lib/haproxy/current/app-ca.crt verifyhost app check-ssl" == options


def test_haproxy_check_refuses_a_release_without_the_app_servers_ca(tmp_path):
    result = haproxy_check(tmp_path, rendered_haproxy(), app_ca=False)
    assert result.returncode != 0
    assert "app-ca.crt" in result.stdout + result.stderr


# --- HAProxy and Prometheus against real app servers over TLS ------------------------------------
# Three app servers from the app image answer the alias `app` with the environment, files and
# health check the program gives them: "trusted" with a certificate of the internal CA naming the
# alias, "misnamed" with one of the internal CA that does not name it (another service's), and
# "stray" with one of another CA naming it. HAProxy (the rendered backend, the CA in its release)
# must keep only "trusted" in rotation; Prometheus (the rendered scrape job, the CA beside
# prometheus.yml) must scrape "trusted" and refuse "stray".


def leaf(ca: dict[str, str], common_name: str, dns_names: list[str], ip_addresses: list[str]) -> dict[str, str]:
    """A server certificate signed by `ca` (from make_ca), made as the mocks make them."""
    key = computed_outputs("tls:index/privateKey:PrivateKey", {})["privateKeyPem"]
    csr = computed_outputs("tls:index/certRequest:CertRequest", {"privateKeyPem": key, "subject": {"commonName": common_name},
                                                                   "dnsNames": dns_names, "ipAddresses": ip_addresses})["certRequestPem"]
    cert = computed_outputs("tls:index/locallySignedCert:LocallySignedCert", {
        "certRequestPem": csr, "caCertPem": ca["ca"], "caPrivateKeyPem": ca["ca_key"], "validityPeriodHours": 24,
        "allowedUses": ["server_auth", "client_auth"]})["certPem"]
    return {"ca": ca["ca"], "cert": cert, "key": key}


def make_ca() -> dict[str, str]:
    key = computed_outputs("tls:index/privateKey:PrivateKey", {})["privateKeyPem"]
    cert = computed_outputs("tls:index/selfSignedCert:SelfSignedCert", {
        "privateKeyPem": key, "isCaCertificate": True, "validityPeriodHours": 24, "subject": {"commonName": "test CA"}})["certPem"]
    return {"ca": cert, "ca_key": key}


def _docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args[:4])}: {result.stderr}")
    return result


@dataclass
class AppTLSBench:
    network: str
    trusted: str  # container names, also their APP_SERVER_NAME
    misnamed: str
    stray: str
    addresses: dict[str, str]  # container -> address
    ca: str  # the CA of the trusted server ("the internal CA")


def _wait_for(probe, timeout: float, what: str):
    """Polls `probe` (-> (result or None, what it saw)) once a second until it returns a result."""
    deadline, seen = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        result, seen = probe()
        if result is not None:
            return result
        time.sleep(1)
    raise AssertionError(f"{what} within {timeout} s; last seen: {seen}")


@pytest.fixture(scope="module")
def app_tls_bench(tmp_path_factory):
    name = f"medisys-apptls-{secrets.token_hex(3)}"
    for attempt in range(20):  # an internal network on a subnet no other network uses
        subnet = f"10.253.{random.randint(0, 255)}"
        if _docker("network", "create", "--internal", "--subnet", f"{subnet}.0/24", name, check=False).returncode == 0:
            break
    else:
        pytest.fail("no free 10.253.x.0/24 subnet for the test network")
    started: list[str] = []
    try:
        conn = AppConnections(db_primary_host="10.0.2.5", db_replica_hosts=[], db_port=5432, db_replica_port=5433, db_name="medisys",
                              db_user="medisys_app", db_password=None, redis_nodes=["10.0.2.31:6379"], redis_password=None,  # type: ignore[arg-type]
                              ca_cert_pem="")
        addresses, internal, other = {}, make_ca(), make_ca()
        for index, role in enumerate(("trusted", "misnamed", "stray"), start=21):
            server, address = f"{name}-{role}", f"{subnet}.{index}"
            issuer, names = {"trusted": (internal, [server, SERVICE_ALIAS]), "misnamed": (internal, [server]),
                             "stray": (other, [server, SERVICE_ALIAS])}[role]
            certs = leaf(issuer, server, names, [address])
            tree = tmp_path_factory.mktemp(role)
            tls = write_tree(tree / "tls", {"ca.crt": issuer["ca"], "server.crt": certs["cert"]})
            run_secrets = write_tree(tree / "secrets", {"server.key": certs["key"], "db_password": "pw", "redis_password": "pw"})
            env = [a for e in app_environment(server, 8080, conn) for a in ("-e", e)]
            _docker("run", "-d", "--name", server, "--network", name, "--ip", address, "--network-alias", SERVICE_ALIAS, *env,
                    "-v", f"{tls}:{APP_CA_PATH.rsplit('/', 1)[0]}:ro", "-v", f"{run_secrets}:{SECRETS_DIR}:ro", image("app"))
            started.append(server)
            addresses[server] = address
        yield AppTLSBench(name, *started, addresses=addresses, ca=internal["ca"])  # type: ignore[misc]
    finally:
        for container in started + [f"{name}-haproxy", f"{name}-prometheus"]:
            _docker("rm", "-f", container, check=False)
        _docker("network", "rm", name, check=False)


def test_an_app_server_passes_its_own_https_health_check(app_tls_bench):
    bench = app_tls_bench

    def healthy():
        result = _docker("exec", bench.trusted, *app_health_check(bench.trusted, 8080), check=False)
        return (True if result.returncode == 0 else None), result.stderr.strip()

    _wait_for(healthy, 30, "the app's Docker health check (curl https with the CA) did not pass")
    plain = _docker("exec", bench.trusted, "curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:8080/health", check=False)
    assert plain.returncode != 0  # no plain HTTP on the app port


def stats_rows(container: str) -> dict[str, dict[str, str]]:
    """The app backend's servers in HAProxy's stats CSV, by address."""
    csv = _docker("exec", container, "curl", "-fsS", "http://127.0.0.1:8404/stats;csv;norefresh", check=False).stdout
    lines = csv.splitlines()
    if not lines:
        return {}
    header = lines[0].lstrip("# ").split(",")
    rows = [dict(zip(header, line.split(","), strict=False)) for line in lines[1:] if line]
    return {r["addr"]: r for r in rows if r.get("pxname") == "app_servers" and r.get("addr")}


def test_haproxy_puts_the_server_with_an_internal_ca_certificate_up_and_refuses_the_other(tmp_path, app_tls_bench):
    bench = app_tls_bench
    certs = issue_test_certificates("localhost", ["localhost"], ["127.0.0.1"])
    root = write_tree(tmp_path / "haproxy", {"haproxy.cfg": render_haproxy_cfg(CFG.load_balancer, Backend(SERVICE_ALIAS, 8080, 4), "127.0.0.1")})
    release = write_tree(tmp_path / "release", {"server.pem": certs["cert"] + certs["key"], "app-ca.crt": bench.ca})
    haproxy = f"{bench.network}-haproxy"
    _docker("run", "-d", "--name", haproxy, "--network", bench.network, "--user", "haproxy", "-v", f"{root}:/etc/haproxy:ro",
            "-v", f"{release}:{EDGE_APP_CA_PATH.rsplit('/', 1)[0]}:ro", "--entrypoint", "haproxy", image("haproxy"), "-db", "-f", "/etc/haproxy/haproxy.cfg")
    trusted, misnamed, stray = (f"{bench.addresses[c]}:8080" for c in (bench.trusted, bench.misnamed, bench.stray))

    def settled():
        rows = stats_rows(haproxy)
        seen = {a: (r.get("status"), r.get("check_status"), r.get("check_desc")) for a, r in rows.items()}
        status = {a: rows.get(a, {}).get("status") for a in (trusted, misnamed, stray)}
        return (rows if status == {trusted: "UP", misnamed: "DOWN", stray: "DOWN"} else None), seen

    rows = _wait_for(settled, 60, "HAProxy did not settle on the trusted server UP and the other two DOWN")
    for refused in (misnamed, stray):
        assert rows[refused]["check_status"].startswith("L6"), rows[refused]  # refused in the TLS handshake
    served_by = set()
    for _ in range(6):
        headers = _docker("exec", haproxy, "curl", "-skS", "-o", "/dev/null", "-D", "-", "https://127.0.0.1:443/").stdout
        served_by |= {line.split(":", 1)[1].strip() for line in headers.splitlines() if line.lower().startswith("x-served-by:")}
    assert served_by == {bench.trusted}


def test_prometheus_scrapes_the_app_over_https_and_refuses_a_certificate_of_another_ca(tmp_path, app_tls_bench):
    bench = app_tls_bench
    targets = dataclasses.replace(scrape_targets(), app_servers=[(c, f"{bench.addresses[c]}:8080") for c in (bench.trusted, bench.stray)])
    fast = CFG.monitoring.model_copy(update={"scrape_interval_seconds": 5})
    root = prometheus_tree(tmp_path, render_prometheus_yml(fast, targets, PLACEMENT.address))
    (root / PROMETHEUS_CA).write_text(bench.ca)
    prometheus = f"{bench.network}-prometheus"
    _docker("run", "-d", "--name", prometheus, "--network", bench.network, "--user", "prometheus", "-v", f"{root}:/etc/prometheus:ro",
            "--entrypoint", "prometheus", image("prometheus"), "--config.file=/etc/prometheus/prometheus.yml",
            "--storage.tsdb.path=/tmp/prometheus", "--web.listen-address=127.0.0.1:9090")

    def scraped():
        raw = _docker("exec", prometheus, "curl", "-fsS", "http://127.0.0.1:9090/api/v1/targets", check=False).stdout
        apps = [t for t in (json.loads(raw)["data"]["activeTargets"] if raw else []) if t["labels"]["job"] == "app"]
        seen = [(t["labels"]["server"], t["health"], t["lastError"][:120]) for t in apps]
        health = {t["labels"]["server"]: t for t in apps}
        return (health if {t["health"] for t in apps} == {"up", "down"} else None), seen

    health = _wait_for(scraped, 60, "Prometheus did not scrape the trusted server and fail the stray one")
    assert health[bench.trusted]["health"] == "up" and health[bench.trusted]["scrapeUrl"].startswith("https://")
    assert "certificate" in health[bench.stray]["lastError"], health[bench.stray]


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


def prometheus_tree(tmp_path: Path, prometheus_yml: str, ca: bool = True) -> Path:
    # As the config release lays it out: the rules and the internal CA beside prometheus.yml.
    files = {"prometheus.yml": prometheus_yml, **({PROMETHEUS_CA: issue_test_certificates("ca", [], [])["ca"]} if ca else {})}
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
