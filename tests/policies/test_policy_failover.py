"""PostgreSQL high availability: automatic failover under Patroni, synchronous replication."""

from __future__ import annotations

import policy_testkit as kit
from policy_testkit import (
    PATRONI_YML,
    assert_violation,
    baseline_stack,
    container,
    replace,
    run_resource,
    run_stack,
    with_upload,
    without,
)

FAILOVER = kit.policy_named("postgres-automatic-failover")
SYNC = kit.policy_named("postgres-synchronous-replication")
PATRONI = "/etc/patroni/10-patroni.yml"


def texts(found: list[tuple[str, str | None]]) -> list[str]:
    return [message for message, _ in found]


def with_patroni(stack, name: str, text: str):
    props = next(p for _, logical, p in stack if logical == name)
    return replace(stack, name, uploads=with_upload(props, PATRONI, text)["uploads"])


def test_patroni_cluster_with_three_etcd_members_and_an_endpoint_passes() -> None:
    assert run_stack(FAILOVER, baseline_stack()) == []


def test_two_etcd_members_cannot_survive_a_loss() -> None:
    found = run_stack(FAILOVER, without(baseline_stack(), "etcd-3"))
    assert_violation(texts(found), "prod", "runs 2 etcd member(s)", "run 3 etcd containers")


def test_member_without_patroni_configuration_fails() -> None:
    props = container("postgres", "medisys-prod-pg-2")
    props["uploads"] = [u for u in props["uploads"] if u["file"] != PATRONI]
    found = run_stack(FAILOVER, replace(baseline_stack(), "pg-2", uploads=props["uploads"]))
    assert_violation(texts(found), "pg-2", "no upload of /etc/patroni/10-patroni.yml")
    assert found[0][1] == kit.urn(kit.CONTAINER, "pg-2")


def test_every_member_tagged_nofailover_is_never_replaced() -> None:
    stack = baseline_stack()
    for name in ("pg-1", "pg-2"):
        stack = with_patroni(stack, name, PATRONI_YML.replace("nofailover: false", "nofailover: true"))
    found = run_stack(FAILOVER, stack)
    assert_violation(texts(found), "prod", "only 0 of 2 PostgreSQL members may be promoted", "nofailover")


def test_patroni_listing_a_single_etcd_endpoint_fails() -> None:
    text = PATRONI_YML.replace("[10.30.0.15:2379, 10.30.0.16:2379, 10.30.0.17:2379]", "[10.30.0.15:2379]")
    found = run_stack(FAILOVER, with_patroni(baseline_stack(), "pg-1", text))
    assert_violation(texts(found), "pg-1", "Patroni lists 1 etcd endpoint(s)")


def test_clients_without_a_leader_following_endpoint_fail() -> None:
    found = run_stack(FAILOVER, without(baseline_stack(), "postgres-proxy"))
    assert_violation(texts(found), "prod", "no endpoint follows the leader", "postgres-proxy")


def test_failover_can_be_switched_off_by_config() -> None:
    assert run_stack(FAILOVER, without(baseline_stack(), "etcd-3"), config={"required": False}) == []


def test_synchronous_member_passes() -> None:
    assert run_resource(SYNC, container("postgres"), name="pg-1") == []


def test_asynchronous_member_fails() -> None:
    props = with_upload(container("postgres"), PATRONI, PATRONI_YML.replace("synchronous_mode: true", "synchronous_mode: false"))
    message = assert_violation(run_resource(SYNC, props, name="pg-1"), "pg-1", "synchronous_mode is not on")
    assert "medisys:postgres.failover.synchronous: true" in message


def test_asynchronous_member_passes_where_not_required() -> None:
    props = with_upload(container("postgres"), PATRONI, PATRONI_YML.replace("synchronous_mode: true", ""))
    assert run_resource(SYNC, props, name="pg-1", config={"required": False}) == []


def test_computed_patroni_configuration_fails_closed() -> None:
    props = with_upload(container("postgres"), PATRONI, kit.UNKNOWN_STRING)
    messages = run_resource(SYNC, props, name="pg-1")
    message = kit.assert_violation(messages, "pg-1", "cannot verify policy 'postgres-synchronous-replication'")
    assert "content` is unknown until the update runs" in message
