"""No silent pass: every policy fails closed on every property it reads that is unknown in a
preview (computed from another resource's output).

For each policy in ALL_POLICIES, the test records every property path the policy reads on
realistic resources (a recording layer between the check and pulumi-policy's unknown-raising
proxy), then makes each of those properties unknown in turn, the way the engine sends it, and
asserts a violation that names the resource and that path. Each policy runs with its schema
defaults and with prod's settings, on the single-host baseline and on the three-host prod stack
(docker providers, overlays, SHARDS), where what a stack policy reads of the provider a resource
is created through (its `host`) counts as read on that provider resource. A new policy that reads a property
and treats its unknown value as absent (`peek`, `except UnknownValueError`, or bypassing the
framework) makes this test fail; the last test proves the check catches such a policy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import policy_testkit as kit
import pytest
from medisys_policies import ALL_POLICIES
from medisys_policies.access import get, peek
from policy_testkit import baseline_stack
from pulumi_policy import (
    Policy,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationPolicy,
)

Resources = list[tuple[str, str, dict[str, Any]]]


def realistic_resources() -> Resources:
    """One of each kind the pack judges: every container role of the baseline once (the
    load-balancer config job and the redis cluster job included), networks, volumes, passwords."""
    seen: set[tuple[str, str]] = set()
    chosen: Resources = []
    for resource_type, name, props in baseline_stack():
        labels = {item["label"]: item["value"] for item in props.get("labels", [])}
        kind = (resource_type, labels.get("medisys.role") or labels.get("medisys.segment") or "")
        if kind not in seen:
            seen.add(kind)
            chosen.append((resource_type, name, props))
    chosen.append((kit.CONTAINER, "lb-config", kit.container("load-balancer-config")))
    overlay = kit.network("database", driver="overlay", attachable=True, options={"encrypted": ""})
    chosen.append((kit.NETWORK, "net-overlay", overlay))
    for host in kit.HOST_NAMES[:2]:  # tcp:// with TLS material, ssh://
        chosen.append((kit.PROVIDER, kit.host_provider_name(host), kit.docker_provider(kit.HOST_ENGINES[host])))
    return chosen


def configs(policy: Policy) -> list[dict[str, Any] | None]:
    """The policy's schema defaults, and prod's settings when they differ."""
    prod = kit.environment_config("prod", policy.name)
    return [None] if prod is None else [None, prod]


def stack_scenarios(policy: Policy) -> list[tuple[Resources, kit.Hosts | None, dict[str, Any] | None]]:
    multi, hosts = kit.multi_host_stack()
    return [(baseline_stack(), None, config) for config in configs(policy)] + [
        (multi, hosts, kit.environment_config("prod", policy.name))
    ]


def path_text(path: tuple[str, ...]) -> str:
    return "`" + ".".join(path) + "`"


def unjudged_resource_reads(policy: Policy) -> tuple[int, list[str]]:
    """(reads checked, the ones that gave no violation naming the resource and the path)."""
    misses: list[str] = []
    checked = 0
    for config in configs(policy):
        for resource_type, name, props in realistic_resources():
            for path in kit.resource_reads(policy, props, resource_type, name, config):
                checked += 1
                messages = kit.run_resource(policy, kit.with_unknown(props, path), resource_type, name, config)
                if not any(f"'{name}'" in m and path_text(path) in m and "unknown" in m for m in messages):
                    misses.append(f"{name}: {'.'.join(path)} -> {messages}")
    return checked, misses


def unjudged_stack_reads(policy: Policy) -> tuple[int, list[str]]:
    misses: list[str] = []
    checked = 0
    for stack, hosts, config in stack_scenarios(policy):
        types = {name: resource_type for resource_type, name, _ in stack}
        for name, paths in kit.stack_reads(policy, stack, hosts, config).items():
            for path in paths:
                checked += 1
                changed = [(t, n, kit.with_unknown(p, path) if n == name else p) for t, n, p in stack]
                found = kit.run_stack(policy, changed, config, hosts)
                if not any(
                    at == kit.urn(types[name], name) and f"'{name}'" in m and path_text(path) in m
                    for m, at in found
                ):
                    misses.append(f"{name}: {'.'.join(path)} -> {[m for m, _ in found]}")
    return checked, misses


def unjudged_reads(policy: Policy) -> tuple[int, list[str]]:
    if isinstance(policy, StackValidationPolicy):
        return unjudged_stack_reads(policy)
    return unjudged_resource_reads(policy)


@pytest.mark.parametrize("policy", ALL_POLICIES, ids=lambda p: p.name)
def test_every_property_a_policy_reads_fails_it_closed_when_unknown(policy: Policy) -> None:
    checked, misses = unjudged_reads(policy)
    assert checked, f"{policy.name} read no property of the baseline: the test proves nothing"
    assert misses == [], f"{policy.name} passed over unknown values:\n" + "\n".join(misses)


def test_the_baseline_is_compliant_so_each_violation_comes_from_the_unknown() -> None:
    for policy in ALL_POLICIES:
        if isinstance(policy, StackValidationPolicy):
            for stack, hosts, config in stack_scenarios(policy):
                if config is not None and hosts is None and policy.name.startswith("placement-"):
                    continue  # prod's placement settings fail one host by design (test_policy_placement)
                assert kit.run_stack(policy, stack, config, hosts) == [], policy.name
        else:
            for config in configs(policy):
                for resource_type, name, props in realistic_resources():
                    assert kit.run_resource(policy, props, resource_type, name, config) == [], (policy.name, name)


def raw_policy(read: Callable[[Any], Any]) -> ResourceValidationPolicy:
    """A policy written without the pack's framework, reading `privileged` with `read`."""

    def validate(args: ResourceValidationArgs, report: Callable[..., None]) -> None:
        if args.resource_type == kit.CONTAINER and read(args.props) is True:
            report("runs privileged")

    return ResourceValidationPolicy(name="test-forgets-unknowns", description="test", validate=validate)


def swallowing_with_except(props: Any) -> Any:
    try:
        return get(props, "privileged")
    except Exception:  # noqa: BLE001 - the mistake this test must catch
        return None


@pytest.mark.parametrize("read", [lambda props: peek(props, "privileged"), swallowing_with_except],
                         ids=["peek", "except"])
def test_the_check_fails_for_a_policy_that_treats_unknown_as_absent(read: Callable[[Any], Any]) -> None:
    checked, misses = unjudged_resource_reads(raw_policy(read))
    assert checked and any(": privileged ->" in miss for miss in misses), misses
