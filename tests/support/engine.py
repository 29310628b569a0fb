"""The real Pulumi engine, through the Automation API, for the engine-level tests.

Stacks made here are temporary: their config file is written from a stack file of this repo (or
from the live-test config), with the Docker host replaced by the local engine, and both the
stack and its file are removed afterwards.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
STATE = ROOT / ".state"


def toolchain_status() -> tuple[bool, str]:
    """(available, reason) as scripts/bootstrap recorded it."""
    status = STATE / "toolchain.status"
    if not status.exists():
        return False, "scripts/bootstrap has not run (no .state/toolchain.status): run `make test`"
    lines = status.read_text().splitlines() or ["missing"]
    if lines[0] == "available":
        return True, ""
    return False, "the Pulumi toolchain is not installed: " + (" ".join(lines[1:]) or "see .state/toolchain.log")


def engine_env() -> dict[str, str]:
    """The environment the CLI needs: the toolchain's exports plus the local backend."""
    env = {
        "PULUMI_BACKEND_URL": f"file://{STATE / 'backend'}",
        "PULUMI_CONFIG_PASSPHRASE_FILE": str(STATE / "passphrase"),
        "PULUMI_SKIP_UPDATE_CHECK": "true",
    }
    toolchain_env = STATE / "toolchain.env"
    if toolchain_env.exists():
        for name, value in re.findall(r'^export (\w+)="?([^"\n]*)"?$', toolchain_env.read_text(), re.M):
            env[name] = value.replace("$PATH", os.environ.get("PATH", ""))
    return env


def stack_file_config(stack: str) -> dict[str, Any]:
    """The config of Pulumi.<stack>.yaml without its Docker host: previews run on the local engine."""
    document = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())
    return {k: v for k, v in document["config"].items() if not k.startswith("docker:")}


def config_from_raw(raw: dict[str, Any]) -> dict[str, Any]:
    """medisys:<key> entries from the dict shape config.load takes."""
    return {f"medisys:{key}": value for key, value in raw.items()}


@contextmanager
def temporary_stack(name: str, config: dict[str, Any], secrets: dict[str, str] | None = None, work_dir: Path = ROOT) -> Iterator[Any]:
    from pulumi import automation as auto

    # The Automation API finds `pulumi` (and reads its version-check switch) in this process's
    # environment, not in the workspace's env_vars.
    os.environ.update(engine_env())
    config_file = work_dir / f"Pulumi.{name}.yaml"
    config_file.write_text(yaml.safe_dump({"config": config}, sort_keys=False))
    stack = auto.create_or_select_stack(
        stack_name=name, work_dir=str(work_dir), opts=auto.LocalWorkspaceOptions(env_vars=engine_env())
    )
    try:
        for key, value in (secrets or {}).items():
            stack.set_config(key, auto.ConfigValue(value=value, secret=True))
        yield stack
    finally:
        try:
            stack.destroy(on_output=lambda _: None)
        finally:
            stack.workspace.remove_stack(name, force=True)
            config_file.unlink(missing_ok=True)


def policy_args(environment: str) -> dict[str, list[str]]:
    return {
        "policy_packs": [str(ROOT / "policies")],
        "policy_pack_configs": [str(ROOT / "policies" / "config" / f"{environment}.json")],
    }
