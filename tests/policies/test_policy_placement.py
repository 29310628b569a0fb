"""Placement on several Docker hosts: the number of hosts, what must not share one, segments that
span the hosts (encrypted in prod), and how the deployer reaches each engine.

The baseline is kit.multi_host_stack(): three hosts (h1 tcp:// with TLS material, h2 ssh://, h3
tcp:// with TLS material), each resource created through its host's provider. Each test moves one
thing and asserts the message. Hosts are judged from the provider a resource is created through
(pulumi-policy's `provider`), never from a label.
"""

from __future__ import annotations

from typing import Any

import policy_testkit as kit
import pytest
from policy_testkit import SECRET, assert_violation, baseline_stack, run_resource, run_stack
from pulumi.runtime import proto
from test_policy_pack import analyze_all, servicer

HOSTS = kit.policy_named("placement-minimum-hosts")
SPREAD = kit.policy_named("placement-anti-affinity")
SPAN = kit.policy_named("placement-segments-span-hosts")
OVERLAY = kit.policy_named("placement-overlay-encrypted")
ENGINE = kit.policy_named("placement-engine-transport")
STACK_POLICIES = (HOSTS, SPREAD, SPAN)
H1, H2, H3 = (kit.host_provider_name(h) for h in kit.HOST_NAMES)

Resources = list[tuple[str, str, dict[str, Any]]]


def prod(policy: Any) -> dict[str, Any] | None:
    return kit.environment_config("prod", policy.name)


def texts(found: list[tuple[str, str | None]]) -> list[str]:
    return [message for message, _ in found]


def judge(policy: Any, resources: Resources, hosts: dict[str, str], environment: str = "prod") -> list[tuple[str, str | None]]:
    return run_stack(policy, resources, kit.environment_config(environment, policy.name), hosts)


def moved(hosts: dict[str, str], **placement: str) -> dict[str, str]:
    """The same stack with some resources created through another host's provider."""
    return {**hosts, **{name.replace("_", "-"): kit.host_provider_name(host) for name, host in placement.items()}}


def with_props(resources: Resources, target: str, **overrides: Any) -> Resources:
    return [(t, n, {**p, **overrides} if n == target else p) for t, n, p in resources]


def swap(resources: Resources, target: str, props: dict[str, Any]) -> Resources:
    return [(t, n, props if n == target else p) for t, n, p in resources]


def engine(host: str | None, environment: str = "prod", **overrides: Any) -> list[str]:
    props = kit.docker_provider(host, **overrides)
    return run_resource(ENGINE, props, kit.PROVIDER, H1, kit.environment_config(environment, ENGINE.name))


# --- the baseline ---------------------------------------------------------------------------------


def test_three_hosts_with_the_planned_spread_pass_every_placement_policy() -> None:
    resources, hosts = kit.multi_host_stack()
    for policy in STACK_POLICIES:
        assert judge(policy, resources, hosts) == [], policy.name
    providers = {n: p for t, n, p in resources if t == kit.PROVIDER}
    for resource_type, name, props in resources:
        provider = (hosts[name], providers[hosts[name]]) if name in hosts else None
        for policy in (OVERLAY, ENGINE):
            assert run_resource(policy, props, resource_type, name, prod(policy), provider) == [], (policy.name, name)


def test_one_local_host_is_what_dev_runs() -> None:
    for policy in STACK_POLICIES:
        assert judge(policy, baseline_stack(), {}, "dev") == [], policy.name
    assert engine(None, "dev") == []


def test_placement_is_judged_from_the_provider_not_from_a_label() -> None:
    """A `medisys.host` label naming three hosts changes nothing: the providers say one host."""
    resources, hosts = kit.multi_host_stack()
    labelled = [
        (t, n, {**p, "labels": [*p["labels"], {"label": "medisys.host", "value": kit.HOST_NAMES[i % 3]}]})
        if t == kit.CONTAINER else (t, n, p)
        for i, (t, n, p) in enumerate(resources)
    ]
    one_host = {name: H1 for name in hosts}
    assert_violation(texts(judge(HOSTS, labelled, one_host)), "prod", "on 1 Docker host(s)", "at least 3")


# --- placement-minimum-hosts ----------------------------------------------------------------------


def test_two_hosts_are_too_few_for_prod() -> None:
    resources, hosts = kit.multi_host_stack()
    on_two = {name: H1 if provider == H3 else provider for name, provider in hosts.items()}
    found = judge(HOSTS, resources, on_two)
    message = assert_violation(texts(found), "prod", "runs its containers on 2 Docker host(s)", "at least 3 required")
    assert f"'{H1}'" in message and f"'{H2}'" in message
    assert found[0][1] is None  # against the stack
    assert judge(HOSTS, resources, on_two, "staging") == []  # staging asks for two


def test_two_providers_of_one_machine_count_once() -> None:
    """h3's provider reaches h1's machine (another scheme and port): two hosts, not three."""
    resources, hosts = kit.multi_host_stack()
    same = with_props(resources, H3, **kit.docker_provider("ssh://ops@10.99.0.11"))
    message = assert_violation(texts(judge(HOSTS, same, hosts)), "prod", "on 2 Docker host(s)")
    assert f"'{H1}' and '{H3}' (one machine)" in message


@pytest.mark.parametrize("default", ["none reported", "engine default"])
def test_a_container_through_the_default_provider_fails_prod(default: str) -> None:
    resources, hosts = kit.multi_host_stack()
    if default == "none reported":
        hosts = {name: provider for name, provider in hosts.items() if name != "app-3"}
    else:
        resources = [*resources, (kit.PROVIDER, kit.DEFAULT_PROVIDER, kit.docker_provider(None))]
        hosts = {**hosts, "app-3": kit.DEFAULT_PROVIDER}
    found = judge(HOSTS, resources, hosts)
    message = assert_violation(texts(found), "app-3", "is created through the default docker provider", "cannot account for where it runs")
    assert message.startswith("Container 'app-3' (role app)")
    assert "ResourceOptions(provider=" in message
    assert [at for m, at in found if "app-3" in m] == [kit.urn(kit.CONTAINER, "app-3")]


def test_a_volume_through_the_default_provider_fails_prod_but_not_dev() -> None:
    resources, hosts = kit.multi_host_stack()
    hosts = {name: provider for name, provider in hosts.items() if name != "vol-postgres-data"}
    assert_violation(texts(judge(HOSTS, resources, hosts)), "vol-postgres-data", "the data it holds")
    assert judge(HOSTS, resources, hosts, "dev") == []


def test_single_host_prod_fails_for_every_resource_on_the_default_provider() -> None:
    """What the pack says about today's program (one engine, no explicit providers) under prod."""
    found = texts(judge(HOSTS, baseline_stack(), {}))
    placed = [n for t, n, _ in baseline_stack() if t in (kit.CONTAINER, kit.NETWORK, kit.VOLUME)]
    assert len([m for m in found if "is created through the default docker provider" in m]) == len(placed)
    assert_violation(found, "prod", "on 1 Docker host(s) (the default docker provider)", "at least 3")


def test_an_unknown_host_fails_closed_against_the_provider() -> None:
    resources, hosts = kit.multi_host_stack()
    unknown = with_props(resources, H2, host=kit.UNKNOWN_STRING)
    for policy in STACK_POLICIES:
        found = judge(policy, unknown, hosts)
        message = assert_violation(texts(found), H2, f"cannot verify policy '{policy.name}'", "`host` is unknown")
        assert message.startswith(f"Provider '{H2}'")
        assert [at for m, at in found if "cannot verify" in m] == [kit.urn(kit.PROVIDER, H2)]


# --- placement-anti-affinity ----------------------------------------------------------------------


def test_two_postgres_members_on_one_host_fail() -> None:
    resources, hosts = kit.multi_host_stack()
    found = judge(SPREAD, resources, moved(hosts, pg_2="h1"))
    message = assert_violation(texts(found), "pg-2", "same Docker host as PostgreSQL member 'pg-1'", f"'{H1}'")
    assert "loses 2 of the 3 PostgreSQL members" in message
    assert [at for m, at in found] == [kit.urn(kit.CONTAINER, "pg-2")]


def test_etcd_on_two_hosts_fails() -> None:
    resources, hosts = kit.multi_host_stack()
    found = texts(judge(SPREAD, resources, moved(hosts, etcd_3="h2")))
    assert_violation(found, "etcd-3", "same Docker host as etcd member 'etcd-2'", "quorum")
    assert len(found) == 1


def test_a_redis_replica_on_its_masters_host_fails() -> None:
    resources, hosts = kit.multi_host_stack()
    found = judge(SPREAD, resources, moved(hosts, redis_4="h1"))  # redis-4 replicates redis-1 (h1)
    message = assert_violation(texts(found), "redis-4", "replica of Redis master 'redis-1'", "shard 1")
    assert "loses the shard" in message
    assert [at for _, at in found] == [kit.urn(kit.CONTAINER, "redis-4")]


def test_replicas_are_paired_by_shards_not_by_node_order() -> None:
    """The same hosts, but SHARDS pairs redis-1 (h1) with redis-6 (h1): only that pair shares a host."""
    resources, hosts = kit.multi_host_stack()
    former = kit.container("redis-cluster-init")
    former["envs"] = [*former["envs"], kit.shards_env([(1, 6), (2, 5), (3, 4)])]
    found = texts(judge(SPREAD, swap(resources, "redis-cluster-init", former), hosts))
    assert_violation(found, "redis-6", "replica of Redis master 'redis-1'")
    assert len(found) == 1


def test_a_shards_entry_naming_no_node_cannot_be_verified() -> None:
    resources, hosts = kit.multi_host_stack()
    former = kit.container("redis-cluster-init")
    former["envs"] = [*former["envs"], kit.shards_env().replace(kit.REDIS_ADDRESSES[5], "10.30.0.99")]
    found = texts(judge(SPREAD, swap(resources, "redis-cluster-init", former), hosts))
    message = assert_violation(found, "redis-cluster-init", "node 2 of shard 2", "no Redis node container has", "cannot be verified")
    assert "10.30.0.99" not in message
    assert_violation(found, "redis-5", "is in no shard")


def test_missing_shards_cannot_be_verified() -> None:
    resources, hosts = kit.multi_host_stack()
    found = texts(judge(SPREAD, swap(resources, "redis-cluster-init", kit.container("redis-cluster-init")), hosts))
    assert_violation(found, "redis-cluster-init", "states no SHARDS", "cannot be verified")
    assert len(found) == 1
    gone = kit.without(resources, "redis-cluster-init")
    assert_violation(texts(judge(SPREAD, gone, hosts)), "prod", "states no SHARDS")


def test_app_servers_piled_on_one_host_fail() -> None:
    resources, hosts = kit.multi_host_stack()
    found = judge(SPREAD, resources, moved(hosts, app_3="h1"))  # 2 / 1 / 0
    message = assert_violation(texts(found), "prod", "spreads its 3 app server(s) unevenly", "at most 1")
    assert f"'{H1}': 2" in message and f"'{H3}': 0" in message
    assert judge(SPREAD, kit.without(resources, "app-3"), hosts) == []  # 1 / 1 / 0 is even enough


def test_a_single_edge_fails_and_two_on_one_host_fail() -> None:
    resources, hosts = kit.multi_host_stack()
    single = texts(judge(SPREAD, kit.without(resources, "lb-2"), hosts))
    assert_violation(single, "prod", "runs 1 load-balancer edge(s) on 1 Docker host(s)", "at least 2 edges on distinct hosts")
    together = texts(judge(SPREAD, resources, moved(hosts, lb_2="h1")))
    assert_violation(together, "prod", "runs 2 load-balancer edge(s) on 1 Docker host(s)")
    assert judge(SPREAD, kit.without(resources, "lb-2"), hosts, "dev") == []


def test_on_one_host_only_the_edges_are_judged() -> None:
    """Members sharing the only host are not a placement fault; prod's two edges still are."""
    found = texts(judge(SPREAD, baseline_stack(), {}))
    assert len(found) == 1 and "load-balancer edge" in found[0]


# --- placement-segments-span-hosts ----------------------------------------------------------------


def test_a_bridge_in_a_multi_host_stack_fails() -> None:
    resources, hosts = kit.multi_host_stack()
    found = judge(SPAN, with_props(resources, "net-database", driver="bridge", options={}), hosts)
    message = assert_violation(texts(found), "net-database", "is not a multi-host network", "3 Docker hosts")
    assert message.startswith("Network 'net-database' (segment database)")
    no_driver = {k: v for k, v in kit.network("database").items() if k != "driver"}
    swapped = [(t, n, no_driver if n == "net-database" else p) for t, n, p in resources]
    assert_violation(texts(judge(SPAN, swapped, hosts)), "net-database", "not a multi-host network")  # default bridge


def test_an_overlay_that_is_not_attachable_fails() -> None:
    resources, hosts = kit.multi_host_stack()
    found = texts(judge(SPAN, with_props(resources, "net-dmz", attachable=False), hosts))
    assert_violation(found, "net-dmz", "without `attachable`")


# --- placement-overlay-encrypted -----------------------------------------------------------------


def test_an_unencrypted_overlay_fails_in_prod_only() -> None:
    props = kit.network("database", driver="overlay", attachable=True)
    message = assert_violation(run_resource(OVERLAY, props, kit.NETWORK, "net-database", prod(OVERLAY)),
                               "net-database", "without Docker's `encrypted` option", "clear VXLAN")
    assert "options={'encrypted': ''}" in message
    assert run_resource(OVERLAY, props, kit.NETWORK, "net-database", kit.environment_config("dev", OVERLAY.name)) == []
    assert run_resource(OVERLAY, {**props, "options": {"com.docker.network.driver.mtu": "1400"}},
                        kit.NETWORK, "net-database", prod(OVERLAY))
    assert run_resource(OVERLAY, {**props, "options": {"encrypted": "true"}}, kit.NETWORK, "net-database", prod(OVERLAY)) == []
    assert run_resource(OVERLAY, kit.network("database"), kit.NETWORK, "net-database", prod(OVERLAY)) == []  # bridge


def test_unknown_overlay_options_fail_closed() -> None:
    props = kit.network("database", driver="overlay", attachable=True, options=kit.UNKNOWN_STRING)
    assert_violation(run_resource(OVERLAY, props, kit.NETWORK, "net-database", prod(OVERLAY)), "net-database",
                     "cannot verify policy 'placement-overlay-encrypted'", "`options` is unknown")


# --- placement-engine-transport ------------------------------------------------------------------


def test_plain_tcp_engine_fails_everywhere_it_is_enforced() -> None:
    for environment in ("prod", "staging", "dev"):
        message = assert_violation(engine("tcp://10.99.0.11:2375", environment, caMaterial=None, certMaterial=None,
                                          keyMaterial=None), H1, "over tcp:// without full TLS client material")
        assert "`caMaterial`, `certMaterial`, `keyMaterial` not set" in message
        assert message.startswith(f"Provider '{H1}'")


def test_partial_tls_material_fails_and_never_quotes_it() -> None:
    message = assert_violation(engine("tcp://10.99.0.11:2376", caMaterial=""), H1, "`caMaterial` not set")
    assert SECRET not in message and "PRIVATE KEY" not in message
    assert engine("tcp://10.99.0.11:2376", caMaterial=None, certMaterial=None, keyMaterial=None,
                  certPath="/etc/medisys/docker-tls/h1") == []


def test_ssh_and_local_sockets_are_fine_but_not_without_host_key_checks() -> None:
    assert engine("ssh://deploy@db2.medisys.internal") == []
    assert engine("unix:///var/run/docker.sock") == []
    for options in (["-o", "StrictHostKeyChecking=no"], ["-oStrictHostKeyChecking no", "-o", "BatchMode=yes"]):
        message = assert_violation(engine("ssh://deploy@db2.medisys.internal", sshOpts=kit.json.dumps(options)),
                                   H1, "StrictHostKeyChecking off")
        assert "known_hosts" in message
    assert engine("ssh://deploy@db2", sshOpts=["-o", "StrictHostKeyChecking=accept-new"]) == []


def test_http_and_unrecognised_hosts_fail() -> None:
    assert_violation(engine("http://10.99.0.11:2375"), H1, "plain http://")
    assert_violation(engine("10.99.0.11:2375"), H1, "not a unix://, ssh:// or tcp:// address")


def test_an_empty_host_or_a_context_fails_prod_only() -> None:
    assert_violation(engine(None), H1, "sets no `host`", "deployer's DOCKER_HOST")
    assert_violation(engine(""), H1, "sets no `host`")
    assert_violation(engine("tcp://10.99.0.11:2376", context="prod"), H1, "selects a Docker context")
    assert engine(None, "dev") == [] and engine(None, "dev", context="laptop") == []


@pytest.mark.parametrize("path", ["host", "keyMaterial", "certPath"])
def test_an_unknown_engine_value_fails_closed(path: str) -> None:
    props = kit.docker_provider("tcp://10.99.0.11:2376", **({"certPath": "/x"} if path == "certPath" else {}))
    props[path] = kit.UNKNOWN_STRING
    message = assert_violation(run_resource(ENGINE, props, kit.PROVIDER, H1, prod(ENGINE)), H1,
                               "cannot verify policy 'placement-engine-transport'", f"`{path}` is unknown")
    assert SECRET not in message


# --- through pulumi-policy's analyzer, with the environment files --------------------------------


def test_prod_blocks_and_staging_warns_through_the_analyzer() -> None:
    resources, hosts = kit.multi_host_stack()
    unsafe = with_props(kit.without(resources, "lb-2"), H3, **kit.docker_provider("tcp://10.99.0.13:2375",
                                                                                    caMaterial=None, certMaterial=None,
                                                                                    keyMaterial=None))
    unsafe = with_props(unsafe, "net-database", options={})
    for environment, level in (("prod", proto.MANDATORY), ("staging", proto.ADVISORY)):
        # (the kit's resources are labelled for prod: staging's policy-config-matches-stack objects)
        found = [d for d in analyze_all(servicer(environment), unsafe, hosts) if d.policyName.startswith("placement-")]
        assert {d.policyName for d in found} == {
            "placement-anti-affinity", "placement-overlay-encrypted", "placement-engine-transport"}, environment
        assert {d.enforcementLevel for d in found} == {level}
        assert not [d.message for d in found if SECRET in d.message]
    dev = {d.policyName for d in analyze_all(servicer("dev"), unsafe, hosts) if d.policyName.startswith("placement-")}
    assert dev == {"placement-engine-transport"}  # plain tcp:// is refused in dev too (advisory there)


def test_the_analyzer_hands_the_container_its_provider() -> None:
    """pulumi-policy 1.21 fills ResourceValidationArgs.provider / PolicyResource.provider from the
    request's `provider` (type, name, URN, inputs): the stack policy sees two hosts here."""
    resources, hosts = kit.multi_host_stack()
    on_two = {name: H1 if provider == H3 else provider for name, provider in hosts.items()}
    found = [d for d in analyze_all(servicer("prod"), resources, on_two) if d.policyName == "placement-minimum-hosts"]
    assert len(found) == 1 and "on 2 Docker host(s)" in found[0].message
