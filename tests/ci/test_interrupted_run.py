"""A killed test session never runs its destroy, and Docker's restart policies bring its containers
back with the daemon, on the slot's subnets. The next session removes them (tests/conftest.py)."""

from __future__ import annotations

import subprocess
import uuid

import pytest

from tests.live.conftest import docker_available, leftovers, remove_leftovers

pytestmark = pytest.mark.skipif(not docker_available(), reason="needs the Docker engine (scripts/bootstrap starts it)")


def docker(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True).stdout.strip()


def test_an_interrupted_runs_objects_are_removed_and_nobody_elses() -> None:
    family = f"medisys-interrupted-{uuid.uuid4().hex[:6]}"
    bystander = f"{family}x-keep"  # shares the family's first characters, not its `<family>-` names
    image = docker("image", "ls", "--format", "{{.Repository}}:{{.Tag}}", "medisys/haproxy").splitlines()[0]
    try:
        docker("network", "create", "--internal", f"{family}-database")
        docker("volume", "create", f"{family}-pg-1-data")
        docker("volume", "create", bystander)
        # A running container holding both, as an interrupted run's restarted container does.
        docker("run", "-d", "--name", f"{family}-pg-1", "--restart", "unless-stopped", "--network", f"{family}-database",
               "-v", f"{family}-pg-1-data:/data", "--entrypoint", "sleep", image, "600")
        assert len(leftovers(family)) == 3
        removed = remove_leftovers(family)
        assert sorted(removed) == sorted([f"container {family}-pg-1", f"network {family}-database", f"volume {family}-pg-1-data"])
        assert leftovers(family) == []
        assert docker("volume", "ls", "-q", "--filter", f"name={bystander}") == bystander
    finally:
        subprocess.run(["docker", "rm", "-f", f"{family}-pg-1"], capture_output=True)
        subprocess.run(["docker", "network", "rm", f"{family}-database"], capture_output=True)
        subprocess.run(["docker", "volume", "rm", f"{family}-pg-1-data", bystander], capture_output=True)
