"""Replays a recorded program onto the local Docker engine, without the Pulumi engine.

The components run under mocks (tests/support/mocks.py); every docker:* resource they register
is created here with the docker CLI from exactly the recorded inputs, in registration order, and
the pulumi-postgresql objects are applied with psql inside the primary. This proves the images,
entrypoints, rendered files and wiring for real where the Pulumi toolchain is not available; it
is not a substitute for `pulumi up` (tests/e2e does that when the toolchain exists).
"""

from __future__ import annotations

import io
import json
import shlex
import subprocess
import tarfile
import time
from collections.abc import Iterable
from typing import Any

from tests.support.mocks import Registered

CONTAINER = "docker:index/container:Container"
NETWORK = "docker:index/network:Network"
VOLUME = "docker:index/volume:Volume"


class ReplayError(RuntimeError):
    pass


def docker(*args: str, input: bytes | None = None, check: bool = True, timeout: int = 120) -> str:
    result = subprocess.run(["docker", *args], input=input, capture_output=True, timeout=timeout)
    if check and result.returncode != 0:
        raise ReplayError(f"docker {' '.join(args[:3])} ... failed: {result.stderr.decode(errors='replace').strip()}")
    return result.stdout.decode(errors="replace")


def _label_args(labels: Iterable[dict[str, str]]) -> list[str]:
    return [arg for item in labels for arg in ("--label", f"{item['label']}={item['value']}")]


def _uploads_tar(uploads: list[dict[str, Any]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for upload in uploads:
            data = (upload.get("content") or "").encode()
            info = tarfile.TarInfo(upload["file"].lstrip("/"))
            info.size = len(data)
            info.mode = 0o755 if upload.get("executable") else 0o644
            info.mtime = int(time.time())
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def create_network(inputs: dict[str, Any]) -> None:
    args = ["network", "create", "--driver", inputs.get("driver", "bridge"), *_label_args(inputs.get("labels", []))]
    if inputs.get("internal"):
        args.append("--internal")
    for ipam in inputs.get("ipamConfigs", []):
        args += ["--subnet", ipam["subnet"]]
        if ipam.get("gateway"):
            args += ["--gateway", ipam["gateway"]]
    docker(*args, inputs["name"])


def create_volume(inputs: dict[str, Any]) -> None:
    docker("volume", "create", *_label_args(inputs.get("labels", [])), inputs["name"])


def container_create_args(inputs: dict[str, Any]) -> list[str]:
    """The `docker create` arguments equivalent to a docker.Container's inputs."""
    name = inputs["name"]
    args = ["create", "--name", name, "--hostname", inputs.get("hostname", name), *_label_args(inputs.get("labels", []))]
    if inputs.get("user"):
        args += ["--user", inputs["user"]]
    if inputs.get("memory"):
        args += ["--memory", f"{inputs['memory']}m", "--memory-swap", f"{inputs.get('memorySwap', inputs['memory'])}m"]
    if inputs.get("cpus"):
        args += ["--cpus", inputs["cpus"]]
    capabilities = inputs.get("capabilities") or {}
    args += [a for cap in capabilities.get("drops", []) for a in ("--cap-drop", cap)]
    args += [a for cap in capabilities.get("adds", []) for a in ("--cap-add", cap)]
    args += [a for opt in inputs.get("securityOpts", []) for a in ("--security-opt", opt)]
    args += ["--restart", inputs.get("restart", "no")]
    for env in inputs.get("envs", []):
        args += ["--env", env]
    health = inputs.get("healthcheck")
    if health:
        tests = health["tests"]
        # The CLI takes a shell string; quoting the exec form keeps every argument intact.
        args += ["--health-cmd", shlex.join(tests[1:]) if tests[0] == "CMD" else tests[1]]
        for flag, key in (("--health-interval", "interval"), ("--health-timeout", "timeout"), ("--health-start-period", "startPeriod")):
            if health.get(key):
                args += [flag, health[key]]
        if health.get("retries"):
            args += ["--health-retries", str(int(health["retries"]))]
    for volume in inputs.get("volumes", []):
        mode = ":ro" if volume.get("readOnly") else ""
        args += ["--volume", f"{volume['volumeName']}:{volume['containerPath']}{mode}"]
    for port in inputs.get("ports", []):
        args += ["--publish", f"{port['ip']}:{int(port['external'])}:{int(port['internal'])}"]
    for path, options in (inputs.get("tmpfs") or {}).items():
        args += ["--tmpfs", f"{path}:{options}" if options else path]
    if inputs.get("logDriver"):
        args += ["--log-driver", inputs["logDriver"]]
    for key, value in (inputs.get("logOpts") or {}).items():
        args += ["--log-opt", f"{key}={value}"]
    if inputs.get("stopTimeout"):
        args += ["--stop-timeout", str(int(inputs["stopTimeout"]))]
    networks = inputs.get("networksAdvanced", [])
    if networks:
        first = networks[0]
        args += ["--network", first["name"], "--ip", first["ipv4Address"]]
        args += [a for alias in first.get("aliases") or [] for a in ("--network-alias", alias)]
    entrypoint = inputs.get("entrypoints") or []
    if entrypoint:
        args += ["--entrypoint", entrypoint[0]]
    args.append(inputs["image"])
    args += entrypoint[1:] + list(inputs.get("command") or [])
    return args


def wait_healthy(name: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = json.loads(docker("inspect", "--format", "{{json .State}}", name))
        health = (state.get("Health") or {}).get("Status")
        if health == "healthy":
            return
        if health == "unhealthy":
            probes = (state.get("Health") or {}).get("Log") or [{}]
            raise ReplayError(f"{name} is unhealthy; last check said: {probes[-1].get('Output', '').strip()[:500]}")
        if not state.get("Running"):
            raise ReplayError(f"{name} stopped while starting: {docker('logs', '--tail', '30', name, check=False)}")
        time.sleep(1)
    logs = subprocess.run(["docker", "logs", "--tail", "30", name], capture_output=True, text=True).stdout
    raise ReplayError(f"{name} was not healthy within {timeout:.0f} s; last log lines:\n{logs}")


def run_container(inputs: dict[str, Any]) -> None:
    name = inputs["name"]
    docker(*container_create_args(inputs))
    for extra in inputs.get("networksAdvanced", [])[1:]:
        aliases = [a for alias in extra.get("aliases") or [] for a in ("--alias", alias)]
        docker("network", "connect", "--ip", extra["ipv4Address"], *aliases, extra["name"], name)
    if inputs.get("uploads"):
        docker("cp", "-", f"{name}:/", input=_uploads_tar(inputs["uploads"]))
    docker("start", name)
    if inputs.get("attach"):
        code = int(docker("wait", name, timeout=int(inputs.get("waitTimeout", 180))).strip())
        if code != 0:
            raise ReplayError(f"one-shot {name} exited {code}: {docker('logs', name, check=False)}")
    elif inputs.get("wait"):
        wait_healthy(name, float(inputs.get("waitTimeout", 180)))


def psql(container: str, database: str, sql: str) -> str:
    return docker("exec", "-i", container, "psql", "-h", "/var/run/postgresql", "-U", "postgres", "-d", database,
                  "-v", "ON_ERROR_STOP=1", "-qAt", input=sql.encode())


def _quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def postgres_statement(resource: Registered) -> tuple[str, str] | None:
    """(database, SQL) that has the effect pulumi-postgresql gives the resource."""
    i = resource.inputs
    kind = resource.type.split(":")[-1]
    if kind == "Role":
        options = "LOGIN" if i.get("login") else "NOLOGIN"
        sql = f'CREATE ROLE "{i["name"]}" {options} PASSWORD {_quote_literal(i["password"])};'
        sql += "".join(f' GRANT "{member}" TO "{i["name"]}";' for member in i.get("roles", []))
        return "postgres", sql
    if kind == "Database":
        return "postgres", f'CREATE DATABASE "{i["name"]}" OWNER "{i.get("owner", "postgres")}";'
    if kind == "Extension":
        return i["database"], f'CREATE EXTENSION IF NOT EXISTS "{i["name"]}";'
    if kind == "Schema":
        return i["database"], f'CREATE SCHEMA "{i["name"]}" AUTHORIZATION "{i["owner"]}";'
    if kind == "Grant":
        privileges = ", ".join(i["privileges"])
        target = {"database": f'DATABASE "{i["database"]}"', "schema": f'SCHEMA "{i.get("schema")}"'}[i["objectType"]]
        return i["database"], f'GRANT {privileges} ON {target} TO "{i["role"]}";'
    if kind == "DefaultPrivileges":
        privileges = ", ".join(i["privileges"])
        return i["database"], (
            f'ALTER DEFAULT PRIVILEGES FOR ROLE "{i["owner"]}" IN SCHEMA "{i["schema"]}" '
            f'GRANT {privileges} ON {i["objectType"].upper()}S TO "{i["role"]}";'
        )
    return None


def comparable(resource: Registered) -> tuple[str, str]:
    return resource.type, json.dumps(resource.inputs, sort_keys=True, default=str)


class Replay:
    """Creates the recorded resources; `destroy` removes everything it created, in reverse."""

    def __init__(self, resources: list[Registered]) -> None:
        self.resources = resources
        self.created: list[tuple[str, str]] = []

    def primary_container(self) -> str:
        for r in self.resources:
            if r.type == CONTAINER and {"label": "medisys.role", "value": "postgres-primary"} in r.inputs.get("labels", []):
                return r.inputs["name"]
        raise ReplayError("no postgres-primary container was registered")

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
                statement = postgres_statement(resource)
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
