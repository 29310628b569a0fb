"""The placement plan: one owner of every container's host and address, no collisions, the
default anti-affinity, per-role overrides, and every resource created through its host's provider."""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest

import config
import placement
from tests.unit.conftest import CONTAINER, NETWORK, VOLUME, labels_of
from topology import build_topology

THREE_HOSTS = [{"name": f"h{i}", "docker_host": f"tcp://10.99.0.1{i}:2376"} for i in (1, 2, 3)]
# On several hosts pulumi-postgresql goes through the endpoint's published gateway.
ADMIN = {"admin_publish": "127.0.0.1", "admin_host": "127.0.0.1", "admin_port": 15432}


def three_host_config(**overrides) -> config.StackConfig:
    postgres = {**ADMIN, **overrides.pop("postgres", {})}
    return config.load({"environment": "dev", "hosts": THREE_HOSTS, "postgres": postgres, **overrides}, "dev")


LARGEST = {"app": {"count": 4}, "postgres": {"replicas": 3, **ADMIN}, "redis": {"masters": 3, "replicas_per_master": 2},
           "load_balancer": {"edges": 3}}


@pytest.mark.parametrize("raw", [{}, LARGEST], ids=["default", "largest"])
def test_no_two_containers_share_an_address_on_any_segment(raw):
    plan = placement.plan(three_host_config(**raw))
    seen: dict[tuple[str, str], str] = {}
    for slot, place in plan.places.items():
        for segment, address in place.addresses.items():
            assert (segment, address) not in seen, f"{slot} and {seen[(segment, address)]} share {address} on {segment}"
            seen[(segment, address)] = slot


def test_reserved_slots_never_collide_even_at_every_maximum():
    cfg = three_host_config()
    used: dict[tuple[str, str], str] = {}
    for slot, addresses in placement.reserved_addresses(cfg).items():
        for segment, address in addresses.items():
            assert (segment, address) not in used, f"{slot} and {used[(segment, address)]} reserve {address} on {segment}"
            assert address != str(getattr(cfg.networks, segment).network_address + 1), f"{slot} takes the gateway"
            used[(segment, address)] = slot


def test_single_host_keeps_the_addresses_the_platform_always_had():
    plan = placement.plan(config.load({"environment": "dev"}, "dev"))
    assert {p.host for p in plan.places.values()} == {"local"}
    assert plan["edge-1"].addresses == {"dmz": "192.168.1.10", "production": "10.0.1.10", "management": "10.0.3.10"}
    assert plan["postgres-1"].on("database") == "10.0.2.10" and plan["etcd-3"].on("database") == "10.0.2.17"
    assert [plan[f"redis-{i}"].on("database") for i in range(1, 7)] == [f"10.0.2.{n}" for n in range(31, 37)]
    assert plan["postgres-proxy"].on("database") == "10.0.2.5" and plan.edges == 1


def test_default_spread_keeps_members_etcd_and_edges_on_distinct_hosts():
    plan = placement.plan(three_host_config(postgres={"replicas": 2}))
    assert len(set(plan.hosts_of("postgres"))) == 3
    assert sorted(plan.hosts_of("etcd")) == ["h1", "h2", "h3"]
    assert len(set(plan.hosts_of("edge"))) == plan.edges == 2
    apps = Counter(plan.hosts_of("app"))
    assert max(apps.values()) - min(apps.get(h, 0) for h in ("h1", "h2", "h3")) <= 1


@pytest.mark.parametrize("replicas", [1, 2])
def test_no_redis_replica_shares_a_host_with_its_master(replicas):
    plan = placement.plan(three_host_config(redis={"masters": 3, "replicas_per_master": replicas}))
    assert len(plan.shards) == 3
    for shard in plan.shards:
        hosts = [plan[s].host for s in (shard.master, *shard.replicas)]
        assert len(set(hosts)) == len(hosts), f"shard {shard} has two nodes on one host: {hosts}"


def test_a_role_pinned_in_config_runs_only_on_its_hosts():
    plan = placement.plan(three_host_config(placement={"postgres": ["h2", "h3"], "monitoring": ["h1"]}))
    assert plan.hosts_of("postgres") == ["h2", "h3"]
    assert {plan[s].host for s in ("prometheus", "alertmanager", "postgres-exporter")} == {"h1"}


def test_two_hosts_put_two_postgres_members_apart_but_three_etcd_members_cannot_all_be():
    plan = placement.plan(config.load({"environment": "dev", "hosts": THREE_HOSTS[:2], "postgres": ADMIN}, "dev"))
    assert sorted(plan.hosts_of("postgres")) == ["h1", "h2"]
    assert Counter(plan.hosts_of("etcd")) == {"h1": 2, "h2": 1}


# configuration errors: each names the field, before anything is built


def error_for(raw: dict, stack: str = "dev") -> str:
    with pytest.raises(config.ConfigError) as caught:
        config.load({"environment": stack, **raw}, stack)
    return str(caught.value)


def test_unknown_host_in_a_placement_is_refused_naming_the_role():
    message = error_for({"hosts": THREE_HOSTS, "placement": {"redis": ["h1", "h9"]}})
    assert "placement.redis: unknown host 'h9'" in message and "h1, h2, h3" in message


def test_two_hosts_with_one_address_are_refused():
    hosts = [THREE_HOSTS[0], {**THREE_HOSTS[1], "docker_host": THREE_HOSTS[0]["docker_host"]}]
    assert "hosts h1, h2 have one address (tcp://10.99.0.11:2376)" in error_for({"hosts": hosts})


def test_prod_with_fewer_than_three_hosts_is_refused():
    message = error_for({"hosts": THREE_HOSTS[:2], "load_balancer": {"certificate": {"mode": "provided"}}}, "prod")
    assert "prod needs at least 3 Docker hosts (got 2)" in message


@pytest.mark.parametrize("address", ["http://h1:2375", "h1:2376", "tcp://"])
def test_an_engine_address_that_is_not_ssh_tcp_or_unix_is_refused(address):
    assert "medisys:hosts.0.docker_host" in error_for({"hosts": [{"name": "h1", "docker_host": address}]})


def test_plain_tcp_without_a_client_certificate_is_refused_naming_the_secret_key():
    cfg = three_host_config()
    with pytest.raises(config.ConfigError) as caught:
        config.host_tls_from(cfg, {"h1": {"ca": "C", "cert": "X", "key": "K"}, "h2": {"ca": "C"}})
    message = str(caught.value)
    assert "medisys:host_tls.h2: cert, key missing" in message and "medisys:host_tls.h3: ca, cert, key missing" in message
    assert "plain tcp:// is refused" in message


def test_ssh_hosts_need_no_client_certificate():
    cfg = config.load({"environment": "dev", "postgres": ADMIN, "hosts": [{"name": "a", "docker_host": "ssh://deploy@a"},
                                                                           {"name": "b", "docker_host": "ssh://deploy@b"}]}, "dev")
    assert config.host_tls_from(cfg, None) == {}


# the program: every resource through its host's provider


@pytest.fixture(scope="module")
def three_hosts():
    from tests.support.mocks import record

    cfg = three_host_config()
    tls = {h.name: config.HostTLS("CA", "CERT", "KEY") for h in cfg.hosts}
    return cfg, record(lambda: build_topology(cfg, None, tls))


def test_one_provider_per_host_with_its_engine_and_client_certificate(three_hosts):
    _, mocks = three_hosts
    providers = {p.name: p for p in mocks.of_type("pulumi:providers:docker")}
    assert sorted(providers) == ["medisys-dev-host-h1", "medisys-dev-host-h2", "medisys-dev-host-h3"]
    h2 = providers["medisys-dev-host-h2"]
    assert h2.inputs["host"] == "tcp://10.99.0.12:2376" and h2.inputs["keyMaterial"] == "KEY"
    assert "keyMaterial" in h2.secret_paths


def test_every_container_and_volume_is_created_on_the_host_the_plan_gives_it(three_hosts):
    cfg, mocks = three_hosts
    plan = placement.plan(cfg)
    by_host = defaultdict(list)
    for resource in mocks.of_type(CONTAINER) + mocks.of_type(VOLUME):
        assert resource.provider, f"{resource.name} is created through the default provider"
        # "<urn ending in ::<provider name>>::<id>"
        by_host[resource.provider.rsplit("::", 2)[-2]].append(resource.name)
    on = {name: host.removeprefix("medisys-dev-host-") for host, names in by_host.items() for name in names}
    for slot, place in plan.places.items():
        if slot.startswith("postgres-") and slot[-1].isdigit():
            assert on[f"medisys-dev-pg-{slot[-1]}"] == place.host
            assert on[f"medisys-dev-pg-{slot[-1]}-data"] == place.host  # its volume beside it
        if slot.startswith("etcd-"):
            assert on[f"medisys-dev-pg-etcd-{slot[-1]}"] == place.host
        if slot.startswith("redis-") and slot[-1].isdigit():
            assert on[f"medisys-dev-redis-{slot[-1]}"] == place.host
    assert on["medisys-dev-backup-agent"] == on["medisys-dev-backup-repository"] == plan["backup-agent"].host
    assert sorted(by_host) == ["medisys-dev-host-h1", "medisys-dev-host-h2", "medisys-dev-host-h3"]


def test_segments_are_attachable_overlays_spanning_the_hosts(three_hosts):
    _, mocks = three_hosts
    networks = {labels_of(n)["medisys.segment"]: n.inputs for n in mocks.of_type(NETWORK)}
    assert networks.pop("postgres-admin")["driver"] == "bridge"  # the gateway's own host only
    assert {n["driver"] for n in networks.values()} == {"overlay"}
    assert all(n["attachable"] for n in networks.values())
    assert networks["database"]["internal"] is True and not networks["dmz"].get("internal")
    # dev: unencrypted (this kernel passes no traffic on encrypted overlays); prod turns it on.
    assert not any("encrypted" in (n.get("options") or {}) for n in networks.values())


def test_two_edges_on_two_hosts_each_publishing_on_its_own_address():
    from tests.support.mocks import record

    hosts = [{**h, "public_address": f"10.99.0.1{i}"} for i, h in enumerate(THREE_HOSTS, start=1)]
    cfg = config.load({"environment": "dev", "hosts": hosts, "postgres": ADMIN}, "dev")
    tls = {h.name: config.HostTLS("CA", "CERT", "KEY") for h in cfg.hosts}
    mocks = record(lambda: build_topology(cfg, None, tls))
    edges = [c for c in mocks.of_type(CONTAINER) if labels_of(c)["medisys.role"] == "load-balancer"]
    assert sorted({p["ip"] for e in edges for p in e.inputs["ports"]}) == ["10.99.0.11", "10.99.0.12"]
    assert len({e.provider for e in edges}) == 2
    gates = [c for c in mocks.of_type(CONTAINER) if labels_of(c)["medisys.role"] == "app-rollout-gate"]
    assert all(len(dict(e.split("=", 1) for e in g.inputs["envs"])["STATS_URLS"].split()) == 2 for g in gates)


def test_the_former_pairs_each_replica_with_its_master_as_planned(three_hosts):
    cfg, mocks = three_hosts
    (former,) = [c for c in mocks.of_type(CONTAINER) if labels_of(c)["medisys.role"] == "redis-cluster-init"]
    shards = dict(e.split("=", 1) for e in former.inputs["envs"])["SHARDS"].split()
    assert shards == ["10.0.2.31:6379,10.0.2.34:6379", "10.0.2.32:6379,10.0.2.35:6379", "10.0.2.33:6379,10.0.2.36:6379"]


def test_several_hosts_without_a_way_to_the_database_are_refused():
    message = error_for({"hosts": THREE_HOSTS})
    assert "postgres.admin_publish and postgres.admin_host are required on several hosts" in message


def test_the_database_gateway_publishes_only_on_the_endpoints_host(three_hosts):
    cfg, mocks = three_hosts
    (gateway,) = [c for c in mocks.of_type(CONTAINER) if labels_of(c)["medisys.role"] == "postgres-admin-gateway"]
    assert [(p["internal"], p["external"], p["ip"]) for p in gateway.inputs["ports"]] == [(5432, 15432, "127.0.0.1")]
    assert labels_of(gateway)["medisys.host"] == placement.plan(cfg)["postgres-proxy"].host
    (provider,) = [p for p in mocks.of_type("pulumi:providers:postgresql")]
    assert (provider.inputs["host"], int(provider.inputs["port"])) == ("127.0.0.1", 15432)
