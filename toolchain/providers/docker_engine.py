"""Docker engine operations for docker.Network, docker.Volume and docker.Container inputs.

The stand-in docker provider (toolchain/providers/docker.py) creates resources through these, and
the replay in tests/support/replay.py uses the same functions, so both turn one set of recorded
inputs into the same `docker` commands. The docker CLI talks to DOCKER_HOST like the provider's
`host` setting would.
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


class DockerError(RuntimeError):
    """A docker command failed; the message carries what docker said."""


def docker(*args: str, input: bytes | None = None, check: bool = True, timeout: int = 120) -> str:
    result = subprocess.run(["docker", *args], input=input, capture_output=True, timeout=timeout)
    if check and result.returncode != 0:
        raise DockerError(f"docker {' '.join(args[:3])} ... failed: {result.stderr.decode(errors='replace').strip()}")
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


def container_logs(name: str, tail: int | None = None) -> str:
    """Both of the container's output streams, as `docker logs` prints them to a terminal."""
    args = ["docker", "logs", *(["--tail", str(tail)] if tail else []), name]
    return subprocess.run(args, capture_output=False, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True).stdout


def wait_healthy(name: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = json.loads(docker("inspect", "--format", "{{json .State}}", name))
        health = (state.get("Health") or {}).get("Status")
        if health == "healthy":
            return
        if health == "unhealthy":
            probes = (state.get("Health") or {}).get("Log") or [{}]
            raise DockerError(f"{name} is unhealthy; last check said: {probes[-1].get('Output', '').strip()[:500]}")
        if not state.get("Running"):
            raise DockerError(f"{name} stopped while starting: {container_logs(name, 30)}")
        time.sleep(1)
    raise DockerError(f"{name} was not healthy within {timeout:.0f} s; last log lines:\n{container_logs(name, 30)}")


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
            raise DockerError(f"one-shot {name} exited {code}: {container_logs(name)}")
    elif inputs.get("wait"):
        wait_healthy(name, float(inputs.get("waitTimeout", 180)))
