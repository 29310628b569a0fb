"""Exposure policies: published ports, bind addresses, internal networks, subnets, segments."""

from __future__ import annotations

import policy_testkit as kit
from policy_testkit import (
    assert_violation,
    baseline_stack,
    container,
    network,
    replace,
    run_resource,
    run_stack,
)

PUBLISH = kit.policy_named("exposure-only-load-balancer-publishes")
WILDCARD = kit.policy_named("exposure-no-wildcard-bind")
INTERNAL = kit.policy_named("exposure-internal-segments")
SUBNETS = kit.policy_named("exposure-subnets-disjoint")
SEGMENTS = kit.policy_named("exposure-segment-membership")


def texts(found: list[tuple[str, str | None]]) -> list[str]:
    return [message for message, _ in found]


# --- publishing --------------------------------------------------------------------------------


def test_load_balancer_may_publish() -> None:
    assert run_resource(PUBLISH, container("load-balancer"), name="lb") == []


def test_database_publishing_a_port_fails() -> None:
    props = container(
        "postgres", ports=[{"internal": 5432, "external": 5432, "ip": "127.0.0.1"}]
    )
    message = assert_violation(run_resource(PUBLISH, props, name="pg"), "pg", "publishes 1 port")
    assert "only load-balancer may" in message


def test_unlabelled_container_may_not_publish() -> None:
    props = container("app", labels=[], ports=[{"internal": 80, "ip": "127.0.0.1"}])
    assert_violation(run_resource(PUBLISH, props, name="x"), "x", "publishes 1 port")


def test_publish_all_ports_fails_even_on_the_load_balancer() -> None:
    props = container("load-balancer", publishAllPorts=True)
    assert_violation(run_resource(PUBLISH, props, name="lb"), "lb", "publishAllPorts")


# --- bind addresses ----------------------------------------------------------------------------


def test_ports_bound_to_loopback_pass() -> None:
    assert run_resource(WILDCARD, container("load-balancer"), name="lb") == []


def test_port_without_ip_fails() -> None:
    props = container("load-balancer", ports=[{"internal": 443, "external": 443}])
    message = assert_violation(
        run_resource(WILDCARD, props, name="lb"), "lb", "ports[0]", "all host addresses"
    )
    assert "set `ip`" in message


def test_port_on_0_0_0_0_fails() -> None:
    props = container("load-balancer", ports=[{"internal": 443, "external": 443, "ip": "0.0.0.0"}])
    assert_violation(run_resource(WILDCARD, props, name="lb"), "lb", "ip is 0.0.0.0")


def test_ipv6_wildcard_fails() -> None:
    props = container("load-balancer", ports=[{"internal": 443, "ip": "::"}])
    assert_violation(run_resource(WILDCARD, props, name="lb"), "lb", "all host addresses")


def test_address_outside_allow_list_fails_and_config_can_allow_it() -> None:
    props = container("load-balancer", ports=[{"internal": 443, "ip": "192.0.2.10"}])
    found = run_resource(WILDCARD, props, name="lb")
    assert_violation(found, "lb", "192.0.2.10", "not in allowedBindAddresses")
    config = {"allowedBindAddresses": ["127.0.0.1", "192.0.2.0/28"]}
    assert run_resource(WILDCARD, props, name="lb", config=config) == []
    assert run_resource(WILDCARD, props, name="lb", config={"allowedBindAddresses": []}) == []


# --- internal segments -------------------------------------------------------------------------


def test_internal_database_network_passes() -> None:
    assert run_resource(INTERNAL, network("database"), kit.NETWORK, "net-db") == []
    assert run_resource(INTERNAL, network("dmz"), kit.NETWORK, "net-dmz") == []


def test_non_internal_management_network_fails() -> None:
    found = run_resource(INTERNAL, network("management", internal=False), kit.NETWORK, "net-mgmt")
    message = assert_violation(found, "net-mgmt", "management network is not internal")
    assert message.startswith("Network 'net-mgmt' (segment management)")
    assert "internal=True" in message


# --- subnets -----------------------------------------------------------------------------------


def test_disjoint_subnets_pass() -> None:
    assert run_stack(SUBNETS, baseline_stack()) == []


def test_overlapping_subnets_fail() -> None:
    stack = replace(baseline_stack(), "net-management", ipamConfigs=[{"subnet": "10.30.0.128/25"}])
    found = run_stack(SUBNETS, stack)
    message = assert_violation(
        texts(found), "net-database", "10.30.0.0/24 overlaps subnet 10.30.0.128/25"
    )
    assert "of network 'net-management'" in message


def test_invalid_subnet_fails() -> None:
    stack = replace(baseline_stack(), "net-dmz", ipamConfigs=[{"subnet": "10.10.0.0/33"}])
    assert_violation(texts(run_stack(SUBNETS, stack)), "net-dmz", "invalid ipamConfigs subnet")


def test_computed_subnet_fails_closed_on_that_network() -> None:
    stack = replace(baseline_stack(), "net-dmz", ipamConfigs=kit.UNKNOWN_STRING)
    found = run_stack(SUBNETS, stack)
    message = assert_violation(texts(found), "net-dmz", "cannot verify", "`ipamConfigs` is unknown")
    assert [at for m, at in found if m == message] == [kit.urn(kit.NETWORK, "net-dmz")]


def test_network_without_subnet_fails_only_when_required() -> None:
    stack = [(t, n, {k: v for k, v in p.items() if not (n == "net-dmz" and k == "ipamConfigs")})
             for t, n, p in baseline_stack()]
    assert run_stack(SUBNETS, stack) == []
    found = run_stack(SUBNETS, stack, config={"requireExplicitSubnet": True})
    assert_violation(texts(found), "net-dmz", "no explicit subnet")


# --- segment membership ------------------------------------------------------------------------


def test_baseline_segments_pass() -> None:
    assert run_stack(SEGMENTS, baseline_stack()) == []


def test_database_on_the_dmz_fails() -> None:
    primary = container("postgres")
    nets = primary["networksAdvanced"] + [{"name": f"{kit.PREFIX}-dmz"}]
    found = run_stack(
        SEGMENTS, replace(baseline_stack(), "pg-1", networksAdvanced=nets)
    )
    message = assert_violation(texts(found), "pg-1", "dmz segment")
    assert "remove the 'medisys-prod-dmz' network" in message
    assert found[0][1] == kit.urn(kit.CONTAINER, "pg-1")


def test_grafana_outside_management_fails() -> None:
    nets = [{"name": f"{kit.PREFIX}-production"}]
    found = run_stack(SEGMENTS, replace(baseline_stack(), "grafana", networksAdvanced=nets))
    assert_violation(texts(found), "grafana", "production segment", "may only use management")


def test_unknown_network_name_fails() -> None:
    nets = [{"name": "bridge"}]
    found = run_stack(SEGMENTS, replace(baseline_stack(), "prometheus", networksAdvanced=nets))
    assert_violation(texts(found), "prometheus", "network 'bridge'", "not a labelled network")


def test_container_without_networks_fails() -> None:
    found = run_stack(SEGMENTS, replace(baseline_stack(), "alertmanager", networksAdvanced=[]))
    assert_violation(texts(found), "alertmanager", "attached to no medisys network")
