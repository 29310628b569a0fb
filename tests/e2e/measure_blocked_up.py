"""What a prod `pulumi up` that violates a mandatory policy has already changed when it stops
(no gate): prod's config on this run's slot, one unsafe variant, then the stack's resources and
Docker objects are counted and the stack destroyed. A measurement for the README, not a test:

    MEDISYS_LIVE_SLOT=1 venv/bin/python -m tests.e2e.measure_blocked_up privileged-container
"""

from __future__ import annotations

import sys
import tempfile
import time
import uuid
from pathlib import Path

from pulumi import automation as auto

from tests.e2e.test_deploy_gate import docker_objects, prod_config_on_this_engine, prod_policy_config, resources
from tests.e2e.test_policy_engine import UNSAFE_PROGRAM, edge_secrets
from tests.support.engine import ROOT, temporary_stack
from tests.support.stack import LIVE_FAMILY


def main(variant: str) -> None:
    suffix = uuid.uuid4().hex[:6]
    name, prefix = f"meas-{suffix}", f"{LIVE_FAMILY}-meas-{suffix}"  # name_prefix: 31 characters at most
    config = prod_config_on_this_engine(variant, prefix)
    # Smaller containers than prod's (memory limits only), within prod's policy minimums.
    config["medisys:app"] = {"count": 2, "resources": {"memory_mb": 256, "cpus": 0.5}}
    config["medisys:postgres"] = {**config["medisys:postgres"], "replicas": 1, "resources": {"memory_mb": 512, "cpus": 0.5}}
    config["medisys:redis"] = {**config["medisys:redis"], "maxmemory_mb": 96, "resources": {"memory_mb": 128, "cpus": 0.25}}
    with tempfile.TemporaryDirectory() as tmp, temporary_stack(name, config, edge_secrets(), work_dir=UNSAFE_PROGRAM) as stack:
        policy_config = prod_policy_config(name, Path(tmp))
        started, lines = time.monotonic(), []
        try:
            stack.up(policy_packs=[str(ROOT / "policies")], policy_pack_configs=[str(policy_config)], on_output=lines.append)
            print("the update passed: no policy stopped it")
        except auto.CommandError as error:
            print(f"the update stopped after {time.monotonic() - started:.0f} s")
            if not any("[mandatory]" in line for line in lines):
                print(str(error)[-2000:])
        print("\n".join(line for line in "\n".join(lines).splitlines() if "[mandatory]" in line))
        state = resources(stack)
        custom = [u for u, r in state.items() if not r["type"].startswith(("pulumi:", "medisys:"))]
        print(f"resources created before it stopped: {len(custom)} (custom resources in the state)")
        print(f"Docker containers, networks and volumes on the engine: {len(docker_objects(prefix))}")


if __name__ == "__main__":
    main(sys.argv[1])
