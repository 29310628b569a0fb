"""Replays a recorded program onto the local Docker engine, without the Pulumi engine.

The components run under mocks (tests/support/mocks.py); every docker:* resource they register
is created here with the docker CLI from exactly the recorded inputs, in registration order, and
the pulumi-postgresql objects are applied with psql inside the primary. This proves the images,
entrypoints, rendered files and wiring for real where the Pulumi toolchain is not available; it
is not a substitute for `pulumi up` (tests/e2e does that when the toolchain exists).
"""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

from tests.support.mocks import Registered
from toolchain.providers.docker_engine import DockerError, create_network, create_volume, docker, run_container
from toolchain.providers.postgres_sql import statement_for

ReplayError = DockerError

CONTAINER = "docker:index/container:Container"
NETWORK = "docker:index/network:Network"
VOLUME = "docker:index/volume:Volume"


def psql(container: str, database: str, sql: str) -> str:
    return docker("exec", "-i", container, "psql", "-h", "/var/run/postgresql", "-U", "postgres", "-d", database,
                  "-v", "ON_ERROR_STOP=1", "-qAt", input=sql.encode())


def comparable(resource: Registered) -> tuple[str, str]:
    return resource.type, json.dumps(resource.inputs, sort_keys=True, default=str)


class Replay:
    """Creates the recorded resources; `destroy` removes everything it created, in reverse."""

    def __init__(self, resources: list[Registered]) -> None:
        self.resources = resources
        self.created: list[tuple[str, str]] = []

    def primary_container(self, timeout: float = 120) -> str:
        """The PostgreSQL member that leads now (Patroni decides it at run time)."""
        members = [r.inputs["name"] for r in self.resources
                   if r.type == CONTAINER and {"label": "medisys.role", "value": "postgres"} in r.inputs.get("labels", [])]
        if not members:
            raise ReplayError("no postgres member container was registered")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for member in members:
                answer = subprocess.run(
                    ["docker", "exec", member, "psql", "-h", "/var/run/postgresql", "-U", "postgres", "-qAtc", "SELECT pg_is_in_recovery()"],
                    capture_output=True, text=True,
                )
                if answer.stdout.strip() == "f":
                    return member
            time.sleep(1)
        raise ReplayError(f"no member of {members} became the primary within {timeout:.0f} s")

    def up(self) -> None:
        for resource in self.resources:
            if resource.type == NETWORK:
                create_network(resource.inputs)
                self.created.append(("network", resource.inputs["name"]))
            elif resource.type == VOLUME:
                create_volume(resource.inputs)
                self.created.append(("volume", resource.inputs["name"]))
            elif resource.type == CONTAINER:
                self.created.append(("container", resource.inputs["name"]))
                started = time.monotonic()
                run_container(resource.inputs)
                print(f"[replay] {resource.inputs['name']} ready in {time.monotonic() - started:.1f}s", flush=True)
            elif resource.type.startswith("postgresql:index/"):
                statement = statement_for(resource.type, resource.inputs)
                if statement:
                    psql(self.primary_container(), *statement)

    def apply(self, new_resources: list[Registered]) -> dict[str, list[str]]:
        """Moves to a new recording of the program as `pulumi up` would: creates added containers,
        replaces changed ones (delete first, as the program asks), removes dropped ones (stopping
        them first, as destroy_grace_seconds makes the provider do). Only containers may differ."""
        old = {r.name: r for r in self.resources}
        new = {r.name: r for r in new_resources}
        changes = {
            "added": [n for n in new if n not in old],
            "replaced": [n for n in new if n in old and comparable(old[n]) != comparable(new[n])],
            "removed": [n for n in reversed(list(old)) if n not in new],
        }
        for name in [n for names in changes.values() for n in names]:
            resource = new.get(name) or old[name]
            if resource.type != CONTAINER:
                raise ReplayError(f"the replay only adds, replaces or removes containers, not {resource.type} {name}")
        for name in changes["replaced"] + changes["removed"]:
            self._remove_container(old[name].inputs)
        for name in changes["replaced"] + changes["added"]:
            self.created.append(("container", new[name].inputs["name"]))
            run_container(new[name].inputs)
        self.resources = list(new_resources)
        return changes

    def _remove_container(self, inputs: dict[str, Any]) -> None:
        grace = int(inputs.get("destroyGraceSeconds", 0))
        docker("stop", "--time", str(grace), inputs["name"], timeout=grace + 60)
        docker("rm", "--volumes", inputs["name"])
        self.created.remove(("container", inputs["name"]))

    def destroy(self) -> None:
        for kind, name in reversed(self.created):
            if kind == "container":
                docker("rm", "--force", "--volumes", name, check=False)
            elif kind == "network":
                docker("network", "rm", name, check=False)
            else:
                docker("volume", "rm", "--force", name, check=False)
        self.created.clear()
