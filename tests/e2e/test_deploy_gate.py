"""A blocked prod `up` changes nothing: through the real engine, with prod's policy config.

First what an `up` on its own does with a violating change (policies judge each resource as it
is registered, so the resources registered before the violation are already created when it
stops), then the same change through `scripts/deploy` (`make deploy`, the deploy workflow's prod
job): it previews with the pack, refuses, and the stack's resources and the Docker objects are
exactly as they were.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_policy_engine import UNSAFE_PROGRAM, edge_secrets
from tests.support.engine import ROOT, engine_env, stack_file_config, temporary_stack, toolchain_status
from tests.support.stack import LIVE_FAMILY, LIVE_OVERRIDES, LIVE_SLOT

AVAILABLE, REASON = toolchain_status()
pytestmark = pytest.mark.skipif(not AVAILABLE, reason=REASON)


def prod_config_on_this_engine(variant: str, prefix: str) -> dict[str, Any]:
    """Prod's stack config, moved to this run's slot (subnets, ports, names) on the local engine.

    Prod's program config refuses fewer than three hosts; the gate does not depend on the hosts, so
    this runs prod's tiers on the one local engine under environment `staging` (which accepts one
    host) and prod's policy config, which blocks it (placement-minimum-hosts among others)."""
    config = stack_file_config("prod")
    config["medisys:environment"] = "staging"
    # Named explicitly (prod's policies refuse an engine left to the deployer's DOCKER_HOST).
    config["medisys:hosts"] = [{"name": "local", "docker_host": "unix:///var/run/docker.sock"}]
    config["medisys:name_prefix"] = prefix
    config["medisys:networks"] = LIVE_OVERRIDES["networks"]
    config["medisys:load_balancer"] = {**config["medisys:load_balancer"], "bind_address": "127.0.0.1",
                                       "https_port": 18443 + 100 * LIVE_SLOT, "http_port": 18080 + 100 * LIVE_SLOT}
    # The local engine reaches the database endpoint directly (prod goes through a tunnel), and
    # the test must be able to destroy what it made.
    config["medisys:postgres"] = {k: v for k, v in config["medisys:postgres"].items() if k not in ("admin_host", "admin_port")}
    config["medisys:protect_data"] = False
    config["test:variant"] = variant
    return config


def prod_policy_config(stack: str, tmp_path: Path) -> Path:
    """policies/config/prod.json for this temporary stack on 127.0.0.1."""
    document = json.loads((ROOT / "policies" / "config" / "prod.json").read_text())
    document["policy-config-matches-stack"]["expectedStack"] = stack
    document["exposure-no-wildcard-bind"] = {**document.get("exposure-no-wildcard-bind", {}), "allowedBindAddresses": ["127.0.0.1"]}
    path = tmp_path / "prod.json"
    path.write_text(json.dumps(document))
    return path


def resources(stack: Any) -> dict[str, Any]:
    """The stack's resources as the state records them (id, inputs, outputs), by URN."""
    deployment = stack.export_stack().deployment
    return {r["urn"]: {k: r.get(k) for k in ("type", "id", "inputs", "outputs")} for r in deployment.get("resources") or []}


def docker_objects(prefix: str) -> list[str]:
    """Every container, network and volume of this stack on the engine, with its id and state."""
    found = []
    for kind, fields in (("container", "{{.Id}} {{.Name}} {{.State.Status}} {{.State.StartedAt}}"),
                         ("network", "{{.Id}} {{.Name}}"), ("volume", "{{.Name}} {{.CreatedAt}}")):
        listing = ["docker", kind, "ls", "-q"] + (["-a"] if kind == "container" else [])
        names = subprocess.run([*listing, "--filter", f"name={prefix}"], capture_output=True, text=True, check=True).stdout.split()
        if names:
            found += subprocess.run(["docker", kind, "inspect", "--format", fields, *names],
                                    capture_output=True, text=True, check=True).stdout.splitlines()
    return sorted(found)


def deploy(stack: str, policy_config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ROOT / "scripts" / "deploy"), "--stack", stack, "--environment", "prod", "--cwd", str(UNSAFE_PROGRAM),
         "--policy-config", str(policy_config), "--refresh"],
        capture_output=True, text=True, env={**os.environ, **engine_env()}, timeout=900,
    )


def test_a_violating_prod_change_is_refused_before_any_resource_changes(tmp_path):
    from pulumi import automation as auto

    suffix = uuid.uuid4().hex[:6]
    name, prefix = f"gate-{suffix}", f"{LIVE_FAMILY}-gate-{suffix}"
    # A published database port: the PostgreSQL members are registered only once their networks and
    # volumes exist (their inputs are those resources' outputs), so the `up` below has always changed
    # the engine when the violation stops it, however the engine schedules the rest.
    config = prod_config_on_this_engine("database-port-published", prefix)
    with temporary_stack(name, config, edge_secrets(), work_dir=UNSAFE_PROGRAM) as stack:
        policy_config = prod_policy_config(name, tmp_path)
        # 1. `pulumi up` on its own: the violation stops it, after it changed what came first.
        with pytest.raises(auto.CommandError) as stopped:
            stack.up(policy_packs=[str(ROOT / "policies")], policy_pack_configs=[str(policy_config)], on_output=lambda _: None)
        assert "exposure-only-load-balancer-publishes" in str(stopped.value)
        # scripts/deploy refreshes first, and a refresh may rewrite the recorded outputs of what the
        # stopped `up` made (a container read back) without changing any resource: refresh here too,
        # so the comparison below sees only what the deploy itself changed.
        stack.refresh(on_output=lambda _: None)
        before, objects = resources(stack), docker_objects(prefix)
        made = sorted(urn.split("::")[-1] for urn, r in before.items() if r["type"].startswith(("docker:", "tls:", "random:")))
        print(f"the violating `pulumi up` stopped after creating {len(made)} resource(s): {made}")
        print(f"docker objects left on the engine: {len(objects)}")
        assert objects, "the stopped `up` changed nothing: the comparison below would prove nothing"
        # 2. The same change through the deploy command: refused, nothing changes.
        done = deploy(name, policy_config)
        assert done.returncode == 1, done.stdout + done.stderr
        assert "deploy refused, nothing was changed" in done.stderr
        assert "exposure-only-load-balancer-publishes" in done.stdout
        assert "pulumi up" not in "\n".join(line for line in done.stdout.splitlines() if line.startswith("+ "))
        assert resources(stack) == before
        assert docker_objects(prefix) == objects
