"""The pack as a whole: metadata, the environment config files, and runtime behaviour through
pulumi-policy's own analyzer servicer (the object PolicyPack serves over gRPC), so unknown
values, config from protobuf (numbers arrive as floats) and enforcement levels behave as they
do under `pulumi preview`. The servicer is built directly: PolicyPack itself would block."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import policy_testkit as kit
import pytest
from google.protobuf import json_format
from medisys_policies import ALL_POLICIES
from medisys_policies.framework import REGISTRY, resource_policy, schema
from medisys_policies.settings import Settings, schema_defaults
from policy_testkit import SECRET, baseline_stack, container
from pulumi.runtime import proto
from pulumi_policy import EnforcementLevel, Severity
from pulumi_policy.policy import _PolicyAnalyzerServicer

CONFIG_DIR = Path(__file__).resolve().parents[2] / "policies" / "config"
ENVIRONMENTS = ("dev", "staging", "prod")
LEVELS = {
    "advisory": proto.ADVISORY,
    "mandatory": proto.MANDATORY,
    "remediate": proto.REMEDIATE,
    "disabled": proto.DISABLED,
}


def load_config(environment: str) -> dict[str, Any]:
    return json.loads((CONFIG_DIR / f"{environment}.json").read_text())


# --- metadata ----------------------------------------------------------------------------------


def test_policy_names_are_unique_kebab_case_and_registered() -> None:
    names = [p.name for p in ALL_POLICIES]
    assert len(names) == len(set(names))
    for name in names:
        assert re.fullmatch(r"[a-z]+(-[a-z0-9]+)+", name), name
        assert name in REGISTRY
    assert {n.split("-")[0] for n in names} >= {
        "tls",
        "backup",
        "sizing",
        "exposure",
        "hardening",
        "secrets",
    }


@pytest.mark.parametrize("policy", ALL_POLICIES, ids=lambda p: p.name)
def test_policy_metadata_is_complete(policy: Any) -> None:
    assert policy.description and policy.remediation_steps
    assert policy.severity is not None
    assert policy.enforcement_level is None  # levels come from the pack and the env config
    properties = policy.config_schema.properties
    assert properties, "every policy has at least one config knob"
    settings = Settings({}, properties)
    for key, spec in properties.items():
        assert "default" in spec, f"{policy.name}.{key} has no default"
        kind = spec["type"]
        value = {
            "integer": settings.integer,
            "number": settings.number,
            "string": settings.text,
            "boolean": settings.flag,
            "array": settings.texts,
            "object": settings.mapping,
        }[kind](key)
        assert value == spec["default"], f"{policy.name}.{key}: code default differs"


def test_settings_convert_protobuf_floats_and_fall_back_on_bad_values() -> None:
    settings = Settings(
        {"n": 30.0, "s": 5, "l": "x"},
        schema(
            n={"type": "integer", "default": 7},
            s={"type": "string", "default": "a"},
            l={"type": "array", "default": ["y"]},
            m={"type": "number", "default": 0.5},
        ),
    )
    assert settings.integer("n") == 30 and isinstance(settings.integer("n"), int)
    assert settings.text("s") == "a"
    assert settings.texts("l") == ["y"]
    assert settings.number("m") == 0.5


# --- environment config files ------------------------------------------------------------------


def _check_schema(instance: Any, spec: dict[str, Any], where: str) -> None:
    """A small JSON-schema subset (type, enum, minimum, maximum, items, properties,
    additionalProperties), used when the jsonschema package is not installed."""
    kinds = {
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "string": lambda v: isinstance(v, str),
        "boolean": lambda v: isinstance(v, bool),
        "array": lambda v: isinstance(v, list),
        "object": lambda v: isinstance(v, dict),
    }
    if "type" in spec:
        assert kinds[spec["type"]](instance), f"{where}: expected {spec['type']}"
    if "enum" in spec:
        assert instance in spec["enum"], f"{where}: not in {spec['enum']}"
    if "minimum" in spec:
        assert instance >= spec["minimum"], f"{where}: below minimum"
    if "maximum" in spec:
        assert instance <= spec["maximum"], f"{where}: above maximum"
    if "exclusiveMinimum" in spec:
        assert instance > spec["exclusiveMinimum"], f"{where}: not above exclusiveMinimum"
    if isinstance(instance, list) and "items" in spec:
        for index, item in enumerate(instance):
            _check_schema(item, spec["items"], f"{where}[{index}]")
    if isinstance(instance, dict):
        properties = spec.get("properties", {})
        for key, value in instance.items():
            if key in properties:
                _check_schema(value, properties[key], f"{where}.{key}")
            elif isinstance(spec.get("additionalProperties"), dict):
                _check_schema(value, spec["additionalProperties"], f"{where}.{key}")
            else:
                assert spec.get("additionalProperties", True) is not False, f"{where}.{key}"


def validate(instance: Any, spec: dict[str, Any], where: str) -> None:
    try:
        import jsonschema
    except ImportError:
        _check_schema(instance, spec, where)
    else:
        jsonschema.validate(instance, spec)


def policy_schema(policy: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            **policy.config_schema.properties,
            "enforcementLevel": {"type": "string", "enum": list(LEVELS)},
        },
        "additionalProperties": False,
    }


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_config_file_validates_against_every_policy_schema(environment: str) -> None:
    config = load_config(environment)
    by_name = {p.name: p for p in ALL_POLICIES}
    assert config["all"] in LEVELS
    for key, value in config.items():
        if key == "all":
            continue
        assert key in by_name, f"{environment}.json names unknown policy {key}"
        if isinstance(value, str):
            assert value in LEVELS
            continue
        validate(value, policy_schema(by_name[key]), f"{environment}.{key}")
    for policy in ALL_POLICIES:  # the schema defaults are valid too
        validate(
            schema_defaults(policy.config_schema.properties), policy_schema(policy), policy.name
        )


def test_prod_is_mandatory_and_lower_environments_advisory() -> None:
    prod, staging, dev = load_config("prod"), load_config("staging"), load_config("dev")
    assert prod["all"] == "mandatory"
    assert all(
        v == "mandatory" or v.get("enforcementLevel", "mandatory") == "mandatory"
        for k, v in prod.items()
        if k != "all" and not isinstance(v, str)
    )
    assert staging["all"] == "advisory" and dev["all"] == "advisory"
    assert prod["backup-retention-minimum"]["minRetentionDays"] == 30
    assert staging["backup-retention-minimum"]["minRetentionDays"] == 7
    assert prod["backup-wal-archiving"]["required"] is True
    for environment in ENVIRONMENTS:
        expected = load_config(environment)["policy-config-matches-stack"]["expectedStack"]
        assert expected == environment


# --- the analyzer servicer ---------------------------------------------------------------------


def servicer(environment: str = "prod") -> _PolicyAnalyzerServicer:
    """The pack's analyzer, configured the way the engine does it for --policy-pack-config:
    schema defaults, then the file's values, with the "all" level expanded per policy."""
    analyzer = _PolicyAnalyzerServicer(
        "medisys-platform-policies", "0.1.0", ALL_POLICIES, EnforcementLevel.ADVISORY
    )
    config = load_config(environment)
    request = proto.ConfigureAnalyzerRequest()
    for policy in ALL_POLICIES:
        entry = config.get(policy.name, config["all"])
        if isinstance(entry, str):
            level, values = entry, {}
        else:
            level = entry.get("enforcementLevel", config["all"])
            values = {k: v for k, v in entry.items() if k != "enforcementLevel"}
        policy_config = request.policyConfig[policy.name]
        policy_config.enforcementLevel = LEVELS[level]
        policy_config.properties.update(
            {**schema_defaults(policy.config_schema.properties), **values}
        )
    analyzer.Configure(request, None)
    return analyzer


def provider_message(name: str, props: dict[str, Any], resource_type: str = kit.PROVIDER) -> Any:
    """The provider a resource is created through, as the engine sends it (its inputs)."""
    message = proto.AnalyzerProviderResource(type=resource_type, urn=kit.urn(resource_type, name), name=name)
    json_format.ParseDict(copy.deepcopy(props), message.properties)
    return message


def providers_of(resources: list[tuple[str, str, dict[str, Any]]]) -> dict[str, tuple[str, dict[str, Any], str]]:
    """name -> (name, inputs, type) of each provider resource (pulumi:providers:*) in `resources`."""
    return {name: (name, props, t) for t, name, props in resources if t.startswith("pulumi:providers:")}


def analyze(
    analyzer: _PolicyAnalyzerServicer,
    resource_type: str,
    name: str,
    props: dict[str, Any],
    provider: tuple[str, dict[str, Any]] | tuple[str, dict[str, Any], str] | None = None,
) -> Any:
    request = proto.AnalyzeRequest(type=resource_type, urn=kit.urn(resource_type, name), name=name)
    json_format.ParseDict(copy.deepcopy(props), request.properties)
    if provider is not None:
        request.provider.CopyFrom(provider_message(*provider))
    return analyzer.Analyze(request, None)


def analyze_stack(
    analyzer: _PolicyAnalyzerServicer,
    resources: list[tuple[str, str, dict[str, Any]]],
    hosts: kit.Hosts | None = None,
) -> Any:
    """`hosts`: which provider (one of `resources`) each resource is created through."""
    providers = providers_of(resources)
    request = proto.AnalyzeStackRequest()
    for resource_type, name, props in resources:
        item = request.resources.add(
            type=resource_type, urn=kit.urn(resource_type, name), name=name
        )
        json_format.ParseDict(copy.deepcopy(props), item.properties)
        if hosts and name in hosts:
            item.provider.CopyFrom(provider_message(*providers[hosts[name]]))
    return analyzer.AnalyzeStack(request, None)


def analyze_all(
    analyzer: _PolicyAnalyzerServicer,
    resources: list[tuple[str, str, dict[str, Any]]],
    hosts: kit.Hosts | None = None,
) -> list[Any]:
    """Every diagnostic of a preview: each resource (with its provider), then the stack."""
    hosts = hosts or {}
    providers = providers_of(resources)
    found = []
    for resource_type, name, props in resources:
        provider = providers[hosts[name]] if name in hosts else None
        found += list(analyze(analyzer, resource_type, name, props, provider).diagnostics)
    return found + list(analyze_stack(analyzer, resources, hosts).diagnostics)


def test_compliant_stack_passes_every_policy_under_prod_config() -> None:
    """Prod runs on three Docker hosts (policies/config/prod.json: placement-*), so its compliant
    stack is the multi-host one, each resource created through its host's provider."""
    resources, hosts = kit.multi_host_stack()
    assert [d.message for d in analyze_all(servicer("prod"), resources, hosts)] == []


def test_single_host_stack_fails_prod_only_on_placement() -> None:
    """One host, every resource through the default provider: prod blocks it for where it runs,
    and for nothing else."""
    found = analyze_all(servicer("prod"), baseline_stack())
    assert {d.policyName for d in found} == {"placement-minimum-hosts", "placement-anti-affinity"}
    assert {d.enforcementLevel for d in found} == {proto.MANDATORY}


def test_prod_violations_are_mandatory_and_dev_ones_advisory() -> None:
    props = container("app", privileged=True)
    for environment, level in (("prod", proto.MANDATORY), ("dev", proto.ADVISORY)):
        response = analyze(servicer(environment), kit.CONTAINER, "app-1", props)
        [diagnostic] = response.diagnostics
        assert diagnostic.policyName == "hardening-no-privileged"
        assert diagnostic.enforcementLevel == level
        assert "Container 'app-1' (role app): runs privileged" in diagnostic.message


def test_unknown_value_is_a_violation_at_the_policys_level_never_a_cant_run() -> None:
    """pulumi-policy would turn an UnknownValueError into an ADVISORY "can't run policy", which
    a prod preview passes: the framework reports it at the policy's own level instead."""
    props = container("app", user=kit.UNKNOWN_STRING)
    for environment, level in (("prod", proto.MANDATORY), ("staging", proto.ADVISORY)):
        response = analyze(servicer(environment), kit.CONTAINER, "app-1", props)
        [diagnostic] = response.diagnostics
        assert diagnostic.policyName == "hardening-non-root"
        assert diagnostic.enforcementLevel == level
        assert "can't run policy" not in diagnostic.message
        assert (
            "Container 'app-1' (role app): cannot verify policy 'hardening-non-root' in this "
            "preview: `user` is unknown until the update runs" in diagnostic.message
        )


def test_unknown_config_file_is_a_mandatory_violation_in_every_policy_reading_it() -> None:
    props = container("load-balancer")
    props["uploads"][0]["content"] = kit.UNKNOWN_STRING  # haproxy.cfg computed in preview
    response = analyze(servicer("prod"), kit.CONTAINER, "lb", props)
    by_policy = {d.policyName: d for d in response.diagnostics}
    diagnostic = by_policy["tls-load-balancer-https-only"]
    assert diagnostic.enforcementLevel == proto.MANDATORY
    assert "cannot verify policy 'tls-load-balancer-https-only' in this preview" in diagnostic.message
    assert "`uploads.0.content` is unknown until the update runs" in diagnostic.message
    assert "a literal or stack config" in diagnostic.message
    assert "secrets-not-in-config-files" in by_policy  # it reads haproxy.cfg too


def test_unknown_values_never_abort_the_run() -> None:
    """Every field unknown at once: each policy either reports or is skipped, none raises."""
    unknown = {key: kit.UNKNOWN_STRING for key in container("load-balancer")}
    analyzer = servicer("prod")
    for resource_type in (kit.CONTAINER, kit.NETWORK, kit.VOLUME, kit.RANDOM_PASSWORD):
        analyze(analyzer, resource_type, "x", unknown)
    stack = [(t, n, {k: kit.UNKNOWN_STRING for k in p}) for t, n, p in baseline_stack()]
    analyze_stack(analyzer, stack)
    partly = [(t, n, {**p, "envs": [kit.UNKNOWN_STRING]}) for t, n, p in baseline_stack()]
    analyze_stack(analyzer, partly)


def test_an_internal_error_is_reported_not_raised() -> None:
    @resource_policy(
        "test-internal-error",
        description="A policy with a bug.",
        types=[kit.CONTAINER],
        severity=Severity.LOW,
        config=schema(flag={"type": "boolean", "default": True}),
        remediation="None.",
    )
    def broken(res: Any, settings: Any, reporter: Any) -> None:
        raise KeyError(SECRET)

    try:
        messages = kit.run_resource(broken, container("app"), name="app-1")
    finally:
        REGISTRY.pop("test-internal-error")
    message = kit.assert_violation(messages, "app-1", "failed internally (KeyError)")
    assert SECRET not in message


def leaky_stack() -> list[tuple[str, str, dict[str, Any]]]:
    """Resources that break every secrets rule with the same secret value."""
    redis = container(
        "redis",
        envs=[f"REDIS_PASSWORD={SECRET}", f"CACHE_URL=rediss://u:{SECRET}@r:6379"],
        command=["redis-server", "--requirepass", SECRET],
        healthcheck={"tests": ["CMD", "redis-cli", f"password={SECRET}"]},
        uploads=[
            kit.upload("/etc/redis/redis.conf", f"requirepass {SECRET}\nmasterauth {SECRET}\n")
        ],
    )
    backup = container(
        "postgres-backup",
        envs=[f"PGBACKREST_REPO1_CIPHER_PASS={SECRET}", f"BACKUP_FULL_INTERVAL_HOURS={SECRET}"],
        uploads=[
            kit.upload(
                "/etc/pgbackrest/pgbackrest.conf",
                f"[global]\nrepo1-cipher-pass={SECRET}\nrepo1-retention-full={SECRET}\n",
            )
        ],
    )
    password = kit.random_password(8, result=SECRET)
    haproxy = (
        f"global\n  ssl-default-bind-options ssl-min-ver {SECRET}\n"
        f"frontend f\n  bind *:443 ssl crt /c.pem ssl-max-ver {SECRET}\n"
        f"userlist u\n  user a insecure-password {SECRET}\n"
    )
    lb = container(
        "load-balancer",
        restart=SECRET,
        ports=[{"internal": 443, "ip": SECRET}],
        labels=[
            {"label": "medisys.role", "value": "load-balancer"},
            {"label": "medisys.stack", "value": SECRET},
        ],
        uploads=[kit.upload("/etc/haproxy/haproxy.cfg", haproxy)],
    )
    primary = container(
        "postgres",
        uploads=[
            kit.upload(
                "/etc/postgresql/postgresql.conf",
                f"ssl = {SECRET}\nssl_min_protocol_version = '{SECRET}'\n"
                f"archive_mode = {SECRET}\narchive_command = '{SECRET}'\n",
            ),
            kit.upload("/etc/postgresql/pg_hba.conf", f"{SECRET} all all 0.0.0.0/0 {SECRET}\n"),
        ],
    )
    redis_conf = f"appendfsync {SECRET}\nmaxmemory {SECRET}\nport {SECRET}\ntls-port {SECRET}\n"
    redis_two = container("redis", uploads=[kit.upload("/etc/redis/redis.conf", redis_conf)])
    net = kit.network(
        "dmz",
        ipamConfigs=[{"subnet": SECRET}],
        labels=[{"label": "medisys.segment", "value": SECRET}],
    )
    return [
        *baseline_stack(),
        (kit.CONTAINER, "leaky-redis", redis),
        (kit.CONTAINER, "leaky-redis-2", redis_two),
        (kit.CONTAINER, "leaky-backup", backup),
        (kit.CONTAINER, "leaky-lb", lb),
        (kit.CONTAINER, "leaky-primary", primary),
        (kit.NETWORK, "leaky-net", net),
        (kit.RANDOM_PASSWORD, "leaky-password", password),
    ]


def test_no_message_contains_a_secret_value() -> None:
    analyzer = servicer("prod")
    messages: list[str] = []
    for resource_type, name, props in leaky_stack():
        messages += [d.message for d in analyze(analyzer, resource_type, name, props).diagnostics]
    messages += [d.message for d in analyze_stack(analyzer, leaky_stack()).diagnostics]
    assert len(messages) >= 30, messages  # the leaks were found...
    assert not [m for m in messages if SECRET in m]  # ...and none was echoed


def test_stack_policies_point_violations_at_resources() -> None:
    analyzer = servicer("prod")
    stack = kit.without(baseline_stack(), "postgres-backup")
    diagnostics = analyze_stack(analyzer, stack).diagnostics
    [diagnostic] = [d for d in diagnostics if d.policyName == "backup-schedule-present"]
    assert diagnostic.urn == kit.urn(kit.CONTAINER, "pg-1")


def test_analyzer_info_describes_every_policy() -> None:
    """What the CLI asks the pack first: names, levels, schemas (with nested defaults)."""
    info = servicer("prod").GetAnalyzerInfo(None, None)
    assert info.name == "medisys-platform-policies"
    assert sorted(p.name for p in info.policies) == sorted(p.name for p in ALL_POLICIES)
    for policy in info.policies:
        assert policy.enforcementLevel == proto.ADVISORY  # the pack default; config raises it
        assert policy.configSchema.properties, policy.name
        assert policy.severity != proto.POLICY_SEVERITY_UNSPECIFIED, policy.name
