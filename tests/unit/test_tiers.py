"""Each tier under Pulumi mocks: the resources it registers and the properties that matter."""

from __future__ import annotations

import pytest

from components.load_balancer import CONFIG_PATH as HAPROXY_CFG
from tests.unit.conftest import CONTAINER, NETWORK, dev_config, envs_of, labels_of, uploads_of
from topology import build_topology


@pytest.fixture(scope="module")
def dev(request):
    from tests.support.mocks import record

    return record(lambda: build_topology(dev_config(), None))


def uploads_of_inputs(inputs):
    return {u["file"]: u["content"] for u in inputs["uploads"]}


def containers(mocks, role):
    # Sorted by name: the engine registers sibling resources in whatever order their inputs resolve.
    return sorted((c for c in mocks.of_type(CONTAINER) if labels_of(c)["medisys.role"] == role), key=lambda c: c.name)


def only(mocks, role):
    (container,) = containers(mocks, role)
    return container


# networks


def test_database_management_and_offsite_segments_are_internal_with_configured_subnets(dev):
    networks = {labels_of(n)["medisys.segment"]: n.inputs for n in dev.of_type(NETWORK)}
    assert {s: n.get("internal", False) for s, n in networks.items()} == {
        "dmz": False, "production": False, "database": True, "management": True, "offsite": True,
    }
    assert networks["database"]["ipamConfigs"] == [{"subnet": "10.0.2.0/24", "gateway": "10.0.2.1"}]


# load balancer


def test_load_balancer_publishes_https_and_http_on_the_configured_address(dev):
    lb = only(dev, "load-balancer")
    assert sorted((p["internal"], p["external"], p["ip"]) for p in lb.inputs["ports"]) == [(80, 8080, "127.0.0.1"), (443, 8443, "127.0.0.1")]


def test_haproxy_config_enforces_tls12_hsts_redirect_and_checks(dev):
    cfg = uploads_of(only(dev, "load-balancer-config"))[HAPROXY_CFG]
    assert "bind :443 ssl crt /var/lib/haproxy/current/server.pem ssl-min-ver TLSv1.2" in cfg
    assert "Strict-Transport-Security" in cfg
    assert "http-request redirect location https://%[req.hdr(host),field(1,:)]:8443%[capture.req.uri] code 301" in cfg
    assert "http-check send meth GET uri /health" in cfg and "option redispatch" in cfg
    assert "server-template app 4 app:8080" in cfg
    assert "bind 10.0.3.10:8404" in cfg


def test_haproxy_reaches_the_app_servers_over_tls_verified_with_the_ca_of_its_release(dev):
    job = only(dev, "load-balancer-config")
    cfg = uploads_of(job)[HAPROXY_CFG]
    assert ("server-template app 4 app:8080 ssl verify required ca-file /var/lib/haproxy/current/app-ca.crt verifyhost app check-ssl"
            in cfg)
    assert "ssl-default-server-options ssl-min-ver TLSv1.2" in cfg and "ssl-server-verify required" in cfg
    # The internal CA is staged with the config and installed into the same release.
    (ca,) = dev.of_type("tls:index/selfSignedCert:SelfSignedCert")
    assert uploads_of(job)["/etc/haproxy/certs/app-ca.crt"] == ca.outputs["certPem"]
    assert "/etc/haproxy/certs/app-ca.crt=app-ca.crt" in envs_of(job)["RELEASE_FILES"].split()


def test_edge_private_key_is_uploaded_only_as_a_secret(dev):
    job = only(dev, "load-balancer-config")
    # Pulumi keeps secrecy per top-level input: the whole upload list is encrypted in state.
    assert "uploads" in job.secret_paths
    assert "PRIVATE KEY" in uploads_of(job)["/etc/haproxy/certs/server.pem"]


def test_haproxy_container_carries_no_config_so_changes_reload_instead_of_recreating_it(dev):
    lb, job = only(dev, "load-balancer"), only(dev, "load-balancer-config")
    assert not lb.inputs.get("uploads")
    assert lb.inputs["command"] == ["haproxy", "-W", "-db", "-S", "/var/lib/haproxy/master.sock,mode,600",
                                    "-f", "/var/lib/haproxy/current/haproxy.cfg"]
    # Both mount the runtime volume: the job writes releases there and reaches the master socket.
    volume = "medisys-dev-lb-runtime"
    for container in (lb, job):
        assert [(v["volumeName"], v["containerPath"]) for v in container.inputs["volumes"]] == [(volume, "/var/lib/haproxy")]
    assert job.inputs["attach"] is True and job.inputs["mustRun"] is False


def test_release_runs_migrations_and_one_gate_per_app_server(dev):
    (migrations,) = containers(dev, "app-migrations")
    assert migrations.inputs["command"] == ["python3", "-m", "medisys_app.migrate"]
    assert envs_of(migrations)["DB_PRIMARY_HOST"] == "10.0.2.5"  # the leader-following endpoint
    gates = containers(dev, "app-rollout-gate")
    assert [envs_of(g)["SERVER_ADDRESS"] for g in gates] == ["10.0.1.21:8080", "10.0.1.22:8080"]
    assert {envs_of(g)["STATS_URLS"] for g in gates} == {"http://10.0.3.10:8404/stats"}
    assert all(g.inputs["attach"] is True for g in gates)


# app servers


def test_app_servers_get_connection_settings_and_passwords_as_secret_files(dev):
    apps = containers(dev, "app")
    assert [a.inputs["name"] for a in apps] == ["medisys-dev-app-1", "medisys-dev-app-2"]
    env = envs_of(apps[0])
    # The leader-following endpoint: writes on 5432 reach the leader, reads on 5433 the replicas.
    assert (env["DB_PRIMARY_HOST"], env["DB_PORT"]) == ("10.0.2.5", "5432")
    assert (env["DB_REPLICA_HOSTS"], env["DB_REPLICA_PORT"]) == ("10.0.2.5", "5433")
    assert env["REDIS_NODES"] == ",".join(f"10.0.2.{n}:6379" for n in range(31, 37))
    assert env["DB_SSLMODE"] == "verify-full"
    assert "uploads" in apps[0].secret_paths
    assert {"/run/secrets/db_password", "/run/secrets/redis_password"} <= set(uploads_of(apps[0]))


def test_each_app_server_serves_https_with_its_own_certificate_naming_it_the_alias_and_its_addresses(dev):
    from cryptography import x509

    apps = containers(dev, "app")
    leaves = []
    for index, app in enumerate(apps, start=1):
        name, env, uploads = app.inputs["name"], envs_of(app), uploads_of(app)
        assert (env["APP_TLS_CERT_FILE"], env["APP_TLS_KEY_FILE"]) == ("/etc/medisys/tls/server.crt", "/run/secrets/server.key")
        assert "PRIVATE KEY" in uploads["/run/secrets/server.key"] and "uploads" in app.secret_paths
        cert = x509.load_pem_x509_certificate(uploads["/etc/medisys/tls/server.crt"].encode())
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert names.get_values_for_type(x509.DNSName) == [name, "app"]
        assert [str(a) for a in names.get_values_for_type(x509.IPAddress)] == [f"10.0.{s}.{20 + index}" for s in (1, 2, 3)]
        leaves.append(uploads["/etc/medisys/tls/server.crt"])
        # Docker's health check: HTTPS, verified with the internal CA for the container's own name.
        assert app.inputs["healthcheck"]["tests"] == [
            "CMD", "curl", "-fsS", "-o", "/dev/null", "--cacert", "/etc/medisys/tls/ca.crt",
            "--resolve", f"{name}:8080:127.0.0.1", f"https://{name}:8080/health"]
    assert len(set(leaves)) == len(apps)  # one certificate (and key) per server


@pytest.mark.parametrize("count", [2, 3, 4])
def test_app_server_count_follows_config(count):
    from tests.support.mocks import record

    mocks = record(lambda: build_topology(dev_config(app={"count": count}), None))
    assert len(containers(mocks, "app")) == count


def test_scaling_changes_no_load_balancer_input():
    from tests.support.mocks import record

    two = only(record(lambda: build_topology(dev_config(app={"count": 2}), None)), "load-balancer").inputs
    four = only(record(lambda: build_topology(dev_config(app={"count": 4}), None)), "load-balancer").inputs
    assert two == four


# PostgreSQL and backups


def test_members_are_declared_alike_and_never_as_primary_or_replica():
    from tests.support.mocks import record

    mocks = record(lambda: build_topology(dev_config(postgres={"replicas": 2}), None))
    members = containers(mocks, "postgres")
    assert [m.inputs["name"] for m in members] == ["medisys-dev-pg-1", "medisys-dev-pg-2", "medisys-dev-pg-3"]
    assert [m.inputs["networksAdvanced"][0]["ipv4Address"] for m in members] == ["10.0.2.10", "10.0.2.11", "10.0.2.12"]
    # Same image, environment and shared files: only the member's own name, address, data path
    # (patroni.yml, pgbackrest.conf) and certificates (PostgreSQL's, pgBackRest's server and client) differ.
    assert {tuple(m.inputs["envs"]) for m in members} == {("PG_ROLE=member", "PATRONI_CONFIG=/etc/patroni")}
    own = ("patroni.yml", "tls/server", "tls/client", "pgbackrest.conf")
    shared = [{k: v for k, v in uploads_of(m).items() if not any(o in k for o in own)} for m in members]
    assert shared[0] == shared[1] == shared[2]
    assert not containers(mocks, "postgres-primary") and not containers(mocks, "postgres-replica")


def test_patroni_runs_on_three_etcd_members_over_tls_with_rewind_and_slots(dev):
    import yaml

    member = containers(dev, "postgres")[0]
    patroni = yaml.safe_load(uploads_of(member)["/etc/patroni/10-patroni.yml"])
    assert patroni["name"] == "medisys-dev-pg-1" and patroni["scope"] == "medisys-dev-pg"
    assert patroni["postgresql"]["data_dir"] == "/var/lib/postgresql/members/1/pgdata"
    assert patroni["etcd3"]["hosts"] == ["10.0.2.15:2379", "10.0.2.16:2379", "10.0.2.17:2379"]
    assert patroni["etcd3"]["protocol"] == "https" and patroni["restapi"]["certfile"]
    dcs = patroni["bootstrap"]["dcs"]
    assert dcs["postgresql"]["use_pg_rewind"] and dcs["postgresql"]["use_slots"]
    assert dcs["postgresql"]["parameters"]["wal_log_hints"] == "on" and "data-checksums" in patroni["bootstrap"]["initdb"]
    assert dcs["loop_wait"] + 2 * dcs["retry_timeout"] <= dcs["ttl"]
    assert dcs["synchronous_mode"] is False and dcs["maximum_lag_on_failover"] == 1048576
    assert patroni["postgresql"]["remove_data_directory_on_rewind_failure"] is True
    for user in ("superuser", "replication", "rewind"):
        assert patroni["postgresql"]["authentication"][user]["sslmode"] == "verify-full"
        assert "password" not in patroni["postgresql"]["authentication"][user]
    assert "uploads" in member.secret_paths
    secrets = yaml.safe_load(uploads_of(member)["/etc/patroni/20-secrets.yml"])
    assert len(secrets["postgresql"]["authentication"]["superuser"]["password"]) == 32
    etcd = containers(dev, "etcd")
    assert [e.inputs["name"] for e in etcd] == [f"medisys-dev-pg-etcd-{i}" for i in (1, 2, 3)]
    command = etcd[0].inputs["command"]
    assert "--client-cert-auth" in command and "--peer-client-cert-auth" in command
    assert "--initial-cluster=medisys-dev-pg-etcd-1=https://10.0.2.15:2380,medisys-dev-pg-etcd-2=https://10.0.2.16:2380,medisys-dev-pg-etcd-3=https://10.0.2.17:2380" in command


def test_synchronous_mode_follows_the_failover_config():
    import yaml
    from tests.support.mocks import record

    mocks = record(lambda: build_topology(dev_config(postgres={"replicas": 2, "failover": {"synchronous": True}}), None))
    for member in containers(mocks, "postgres"):
        dcs = yaml.safe_load(uploads_of(member)["/etc/patroni/10-patroni.yml"])["bootstrap"]["dcs"]
        assert dcs["synchronous_mode"] is True and dcs["synchronous_mode_strict"] is False


def test_endpoint_checks_patroni_for_the_leader_and_the_replicas(dev):
    proxy = only(dev, "postgres-proxy")
    assert proxy.inputs["networksAdvanced"][0]["ipv4Address"] == "10.0.2.5"
    cfg = uploads_of(proxy)["/etc/haproxy/haproxy.cfg"]
    assert "bind 10.0.2.5:5432" in cfg and "uri /primary" in cfg
    assert "bind 10.0.2.5:5433" in cfg and "uri /replica" in cfg
    assert "server pg-1 10.0.2.10:5432 check port 8008" in cfg and "server pg-2 10.0.2.11:5432 check port 8008" in cfg
    assert "on-marked-down shutdown-sessions" in cfg and "check-ssl verify required" in cfg


def test_scaling_replicas_changes_no_endpoint_input():
    from tests.support.mocks import record

    one = only(record(lambda: build_topology(dev_config(postgres={"replicas": 1}), None)), "postgres-proxy").inputs
    three = only(record(lambda: build_topology(dev_config(postgres={"replicas": 3}), None)), "postgres-proxy").inputs
    assert one == three
    assert "server pg-4 10.0.2.13:5432" in uploads_of_inputs(one)["/etc/haproxy/haproxy.cfg"]


def test_member_certificates_name_the_endpoint_so_clients_verify_through_it(dev):
    # PostgreSQL's certificate (pgBackRest's TLS server has one of its own, with the same common name).
    requests = {r.name: r.inputs for r in dev.of_type("tls:index/certRequest:CertRequest")}
    assert requests["medisys-dev-pg-1-tls-csr"]["ipAddresses"] == ["10.0.2.10", "10.0.2.5"]


def test_pulumi_postgresql_manages_the_database_through_the_endpoint(dev):
    (provider,) = [r for r in dev.resources if r.type == "pulumi:providers:postgresql"]
    assert provider.inputs["host"] == "10.0.2.5" and provider.inputs["sslmode"] == "require"


def test_pg_hba_allows_only_tls_and_scram(dev):
    hba = uploads_of(containers(dev, "postgres")[0])["/etc/postgresql/pg_hba.conf"]
    rules = [line.split() for line in hba.splitlines() if line and not line.startswith("#")]
    assert {r[0] for r in rules} == {"local", "hostssl"}
    assert all(r[-1] == "scram-sha-256" for r in rules if r[0] == "hostssl")
    assert "trust" not in hba


def pgbackrest_conf(container) -> dict[str, list[str]]:
    """pgbackrest.conf as {section: ["key=value", ...]}, comments dropped."""
    sections: dict[str, list[str]] = {}
    section = ""
    for line in uploads_of(container)["/etc/pgbackrest/pgbackrest.conf"].splitlines():
        if line.startswith("["):
            section = line.strip("[]")
        elif line and not line.startswith("#"):
            sections.setdefault(section, []).append(line)
    return sections


def test_every_member_archives_wal_to_both_repositories_on_the_repository_host_over_tls(dev):
    for member in containers(dev, "postgres"):
        files = uploads_of(member)
        assert "archive_mode = on" in files["/etc/postgresql/postgresql.conf"]
        conf = pgbackrest_conf(member)
        for repo in (1, 2):
            assert {f"repo{repo}-host=10.0.2.40", f"repo{repo}-host-type=tls", f"repo{repo}-host-ca-file=/etc/pgbackrest/tls/ca.crt",
                    f"repo{repo}-host-cert-file=/etc/pgbackrest/tls/client.crt"} <= set(conf["global"])
        # No repository, no cipher pass, no offsite key: the repository host holds them.
        assert not [line for line in conf["global"] if line.startswith(("repo1-path", "repo1-cipher", "repo2-type", "repo2-sftp"))]
        assert not [f for f in files if f.startswith(("/etc/pgbackrest/conf.d/", "/etc/pgbackrest/offsite/"))]
        assert "archive-async=y" in conf["global:archive-push"]
        # Its data directory, and its TLS server lets in the agent's client certificate only.
        mounts = [v["containerPath"] for v in member.inputs["volumes"]]
        (own,) = mounts
        assert conf["main"] == [f"pg1-path={own}/pgdata", "pg1-socket-path=/var/run/postgresql"]
        address = member.inputs["networksAdvanced"][0]["ipv4Address"]
        assert f"tls-server-address={address}" in conf["global"]
        assert [line for line in conf["global"] if line.startswith("tls-server-auth")] == ["tls-server-auth=medisys-dev-backup-agent-client=main"]


def test_member_pgbackrest_certificates_name_the_member_and_its_client_and_keys_are_secret(dev):
    requests = {r.inputs["subject"]["commonName"]: r.inputs for r in dev.of_type("tls:index/certRequest:CertRequest")}
    for index, member in enumerate(containers(dev, "postgres"), start=1):
        name, address = member.inputs["name"], member.inputs["networksAdvanced"][0]["ipv4Address"]
        server = next(r for r in dev.of_type("tls:index/certRequest:CertRequest") if r.name == f"{name}-pgbackrest-server-csr")
        assert (server.inputs["dnsNames"], server.inputs["ipAddresses"]) == ([name], [address])
        assert f"{name}-backup-client" in requests
        assert "uploads" in member.secret_paths
        assert "PRIVATE KEY" in uploads_of(member)["/etc/pgbackrest/tls/client.key"]
    agent = next(r for r in dev.of_type("tls:index/certRequest:CertRequest") if r.name == "medisys-dev-backup-agent-pgbackrest-server-csr")
    assert agent.inputs["ipAddresses"] == ["10.0.2.40"] and "medisys-dev-backup-agent-client" in requests


def test_backup_agent_schedule_and_cipher_pass_as_secret(dev):
    agent = only(dev, "postgres-backup")
    assert envs_of(agent)["BACKUP_FULL_INTERVAL_HOURS"] == "24"
    assert "uploads" in agent.secret_paths
    assert uploads_of(agent)["/etc/pgbackrest/conf.d/cipher.conf"].startswith("[global]\nrepo1-cipher-pass=")
    # Its own repository volume and nothing of the members'.
    assert [(v["volumeName"], v["containerPath"], v.get("readOnly", False)) for v in agent.inputs["volumes"]] == [
        ("medisys-dev-backup-repository", "/var/lib/pgbackrest", False)]
    # pgBackRest is given every member over TLS and backs up whichever is the primary.
    conf = pgbackrest_conf(agent)
    for index, address in ((1, "10.0.2.10"), (2, "10.0.2.11")):
        assert {f"pg{index}-host={address}", f"pg{index}-host-type=tls", f"pg{index}-path=/var/lib/postgresql/members/{index}/pgdata",
                f"pg{index}-host-ca-file=/etc/pgbackrest/tls/ca.crt", f"pg{index}-host-cert-file=/etc/pgbackrest/tls/client.crt"} <= set(conf["main"])
    assert [line for line in conf["global"] if line.startswith("tls-server-auth")] == [
        "tls-server-auth=medisys-dev-pg-1-backup-client=main", "tls-server-auth=medisys-dev-pg-2-backup-client=main"]
    assert "tls-server-address=10.0.2.40" in conf["global"]
    # It reads the primary's WAL position as the monitoring role, with a password file.
    assert envs_of(agent)["METRICS_PG_USER"] == "medisys_monitoring"
    assert uploads_of(agent)["/etc/medisys-backup/pgpass"].startswith("*:*:*:medisys_monitoring:")


def test_the_agent_is_built_after_the_cluster_and_keeps_the_address_and_name_of_the_repository_host(dev):
    (component,) = [r for r in dev.resources if r.type == "medisys:platform:BackupAgent"]
    agent = only(dev, "postgres-backup")
    assert agent.inputs["name"] == "medisys-dev-backup-agent"
    assert {n["ipv4Address"] for n in agent.inputs["networksAdvanced"]} == {"10.0.2.40", "10.0.3.40", "10.0.4.40"}
    assert component.name == "medisys-dev-backup"


def test_offsite_repository_is_sftp_with_its_own_cipher_pass_and_a_pinned_host_key(dev):
    import base64
    import hashlib

    agent, sftp = only(dev, "postgres-backup"), only(dev, "offsite-sftp")
    conf = uploads_of(agent)["/etc/pgbackrest/pgbackrest.conf"]
    for line in ("repo2-type=sftp", "repo2-sftp-host=10.0.4.50", "repo2-sftp-host-port=2222", "repo2-sftp-host-key-check-type=fingerprint",
                 "repo2-cipher-type=aes-256-cbc", "repo2-retention-full-type=time", "repo2-retention-full=7"):
        assert line in conf.splitlines()
    offsite = uploads_of(agent)["/etc/pgbackrest/conf.d/offsite.conf"]
    repo1_pass = uploads_of(agent)["/etc/pgbackrest/conf.d/cipher.conf"].split("=", 1)[1].strip()
    repo2_pass = offsite.split("repo2-cipher-pass=", 1)[1].split()[0]
    assert len(repo2_pass) >= 32 and repo2_pass != repo1_pass
    # The fingerprint pgBackRest checks is that of the host key the server is given.
    host_key = next(k for k in dev.of_type("tls:index/privateKey:PrivateKey") if k.name.endswith("offsite-host-key"))
    blob = base64.b64decode(host_key.outputs["publicKeyOpenssh"].split()[1])
    assert f"repo2-sftp-host-fingerprint={hashlib.sha256(blob).hexdigest()}" in offsite.splitlines()
    assert uploads_of(sftp)["/etc/offsite-sftp/ssh_host_ed25519_key"] == host_key.outputs["privateKeyOpenssh"]
    client_key = next(k for k in dev.of_type("tls:index/privateKey:PrivateKey") if k.name.endswith("offsite-client-key"))
    assert client_key.inputs["algorithm"] == "ED25519"
    assert uploads_of(sftp)["/etc/offsite-sftp/authorized_keys"] == client_key.outputs["publicKeyOpenssh"]
    assert uploads_of(agent)["/etc/pgbackrest/offsite/id_ed25519"] == client_key.outputs["privateKeyOpenssh"]
    assert "uploads" in sftp.secret_paths and sftp.inputs["user"] == "pgbackrest"


def test_only_the_backup_agent_shares_the_offsite_segment_with_the_sftp_server(dev):
    (offsite,) = [n.inputs["name"] for n in dev.of_type(NETWORK) if labels_of(n)["medisys.segment"] == "offsite"]
    on_segment = {labels_of(c)["medisys.role"] for c in dev.of_type(CONTAINER)
                  if offsite in [a["name"] for a in c.inputs["networksAdvanced"]]}
    # The members push WAL to the repository host, which alone reaches the offsite server.
    assert on_segment == {"offsite-sftp", "postgres-backup"}
    assert envs_of(only(dev, "postgres-backup"))["BACKUP_REPOS"] == "1 2"


def test_an_external_offsite_host_replaces_the_sftp_server_and_routes_out():
    from tests.support.mocks import record

    fingerprint = "SHA256:" + "A" * 43
    mocks = record(lambda: build_topology(dev_config(backups={"offsite": {
        "host": "backup.example.org", "port": 2022, "user": "medisys", "path": "/srv/medisys", "host_key_fingerprint": fingerprint,
        "retention_days": 90}}), None))
    assert not containers(mocks, "offsite-sftp")
    conf = uploads_of(only(mocks, "postgres-backup"))["/etc/pgbackrest/pgbackrest.conf"].splitlines()
    assert {"repo2-sftp-host=backup.example.org", "repo2-sftp-host-port=2022", "repo2-sftp-host-user=medisys",
            "repo2-path=/srv/medisys", "repo2-retention-full=90"} <= set(conf)
    offsite = uploads_of(only(mocks, "postgres-backup"))["/etc/pgbackrest/conf.d/offsite.conf"]
    assert f"repo2-sftp-host-fingerprint={'0' * 64}" in offsite
    (network,) = [n for n in mocks.of_type(NETWORK) if labels_of(n)["medisys.segment"] == "offsite"]
    assert not network.inputs.get("internal", False)


def test_database_objects_are_managed_with_least_privilege(dev):
    roles = {r.inputs["name"]: r.inputs for r in dev.of_type("postgresql:index/role:Role")}
    assert set(roles) == {"medisys_app", "medisys_readonly", "medisys_monitoring"}
    assert roles["medisys_monitoring"]["roles"] == ["pg_monitor"]
    assert not any(r.get("superuser") for r in roles.values())
    (extension,) = dev.of_type("postgresql:index/extension:Extension")
    assert extension.inputs["name"] == "pg_stat_statements"
    (default_privileges,) = dev.of_type("postgresql:index/defaultPrivileges:DefaultPrivileges")
    assert default_privileges.inputs["privileges"] == ["SELECT"] and default_privileges.inputs["role"] == "medisys_readonly"


def test_every_generated_password_is_long_enough(dev):
    lengths = [p.inputs["length"] for p in dev.of_type("random:index/randomPassword:RandomPassword")]
    assert len(lengths) >= 7 and min(lengths) >= 32


# Redis


def test_redis_nodes_announce_fixed_addresses_and_include_the_secret_password(dev):
    nodes = containers(dev, "redis")
    assert len(nodes) == 6  # three masters, a replica each
    for index, node in enumerate(nodes, start=1):
        conf = uploads_of(node)["/etc/redis/redis.conf"]
        assert f"cluster-announce-ip 10.0.2.{30 + index}" in conf and "port 0" in conf and "include /etc/redis/secrets.conf" in conf
        assert "cluster-config-file /data/nodes.conf" in conf
        assert node.inputs["volumes"][0]["containerPath"] == "/data"
        assert "uploads" in node.secret_paths


def test_redis_nodes_run_the_handover_entrypoint_and_the_rejoin_health_check(dev):
    for node in containers(dev, "redis"):
        assert node.inputs["entrypoints"] == ["/bin/sh", "/usr/local/bin/redis-node", "serve"]
        assert node.inputs["healthcheck"]["tests"] == ["CMD", "/bin/sh", "/usr/local/bin/redis-node", "ready"]
        assert "CLUSTER FAILOVER" in uploads_of(node)["/usr/local/bin/redis-node"]
        # docker stop waits long enough for the handover (at most 15 s) and Redis' own shutdown.
        assert node.inputs["stopTimeout"] >= 30 and node.inputs["destroyGraceSeconds"] >= 30


def test_each_redis_node_depends_on_the_one_before_so_replacements_roll(dev):
    # Pulumi registers a resource only once its dependencies are done, so a settings change
    # that replaces every node replaces them one after the other.
    nodes = [n.name for n in containers(dev, "redis")]
    redis_deps = {name: [u.rsplit("::", 1)[-1] for u in dev.dependencies[name] if "container:Container::" in u] for name in nodes}
    assert redis_deps[nodes[0]] == []
    for previous, node in zip(nodes, nodes[1:]):
        assert redis_deps[node] == [previous], node


def test_cluster_forming_job_is_one_shot_and_waits_for_its_result(dev):
    former = only(dev, "redis-cluster-init")
    assert former.inputs["attach"] is True and former.inputs["mustRun"] is False and former.inputs["restart"] == "no"
    env = envs_of(former)
    assert env["NODES"] == " ".join(f"10.0.2.{n}:6379" for n in range(31, 37))
    assert (env["MASTERS"], env["REPLICAS_PER_MASTER"]) == ("3", "1")


def test_a_failed_cluster_forming_job_fails_the_deployment():
    from components.redis_cluster import _require_success

    assert _require_success(0) is True
    with pytest.raises(RuntimeError, match="forming the Redis cluster failed"):
        _require_success(1)


# monitoring


def test_prometheus_scrapes_every_tier_and_loads_the_rules(dev):
    import yaml

    prometheus = uploads_of(only(dev, "prometheus-config"))
    document = yaml.safe_load(prometheus["/etc/prometheus/prometheus.yml"])
    jobs = {job["job_name"]: job for job in document["scrape_configs"]}
    assert set(jobs) == {"prometheus", "alertmanager", "haproxy", "app", "postgres", "redis", "blackbox-tls", "backup"}
    assert [c["labels"]["server"] for c in jobs["app"]["static_configs"]] == ["medisys-dev-app-1", "medisys-dev-app-2"]
    # The app servers answer HTTPS only; the CA comes with the release, named relative to the config.
    assert jobs["app"]["scheme"] == "https"
    assert jobs["app"]["tls_config"] == {"ca_file": "ca.crt", "insecure_skip_verify": False, "min_version": "TLS12"}
    assert "/etc/prometheus/ca.crt=ca.crt" in envs_of(only(dev, "prometheus-config"))["RELEASE_FILES"].split()
    assert "/etc/prometheus/rules/medisys.rules.yml" in prometheus
    assert document["rule_files"] == ["rules/*.yml"]
    assert "rules/medisys.rules.yml" in envs_of(only(dev, "prometheus-config"))["RELEASE_FILES"]


def test_prometheus_and_alertmanager_reload_their_config_instead_of_being_recreated(dev):
    for role, config_file in (("prometheus", "/etc/prometheus/live/current/prometheus.yml"),
                              ("alertmanager", "/etc/alertmanager/live/current/alertmanager.yml")):
        server, job = only(dev, role), only(dev, f"{role}-config")
        assert f"--config.file={config_file}" in server.inputs["command"]
        assert not server.inputs.get("uploads"), role
        assert envs_of(job)["RELOAD_COMMAND"].count("/-/reload") == 1
    assert "--web.enable-lifecycle" in only(dev, "prometheus").inputs["command"]


def test_grafana_is_off_in_dev_unless_switched_on():
    from tests.support.mocks import record

    assert containers(record(lambda: build_topology(dev_config(), None)), "grafana") == []
    image = "registry.example/grafana:11.3.0"
    mocks = record(lambda: build_topology(dev_config(monitoring={"grafana": True}, images={"overrides": {"grafana": image}}), None))
    grafana = only(mocks, "grafana")
    assert grafana.inputs["image"] == image and "ports" not in grafana.inputs
    assert envs_of(grafana)["GF_AUTH_ANONYMOUS_ENABLED"] == "false"