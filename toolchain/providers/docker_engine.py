"""Docker engine operations for docker.Network, docker.Volume and docker.Container inputs.

The stand-in docker provider (toolchain/providers/docker.py) creates resources through these, and
the replay in tests/support/replay.py uses the same functions, so both turn one set of recorded
inputs into the same `docker` commands. Every command goes to an `Engine`: DEFAULT_ENGINE is the
ambient one (a plain `docker`, which follows DOCKER_HOST, as the replay and an unconfigured provider
use); a provider's `host`, TLS and ssh settings make another (toolchain/providers/docker_host.py).
"""

from __future__ import annotations

import io
import json
import os
import shlex
import subprocess
import tarfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


class DockerError(RuntimeError):
    """A docker command failed; the message carries what docker said (and which engine said it)."""


@dataclass(frozen=True)
class Engine:
    """Where a docker command goes. The default (no host) is the ambient engine: `docker` as is.
    A configured one runs `docker FLAGS ...` (`-H HOST` and TLS options) in an environment without
    UNSET and with ENV, and its errors name the host and the provider."""

    host: str = ""
    provider: str = ""
    flags: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    unset: tuple[str, ...] = ()

    def argv(self, *args: str) -> list[str]:
        return ["docker", *self.flags, *args]

    def environment(self) -> dict[str, str] | None:
        if not self.env and not self.unset:
            return None
        return {**{k: v for k, v in os.environ.items() if k not in self.unset}, **dict(self.env)}

    def describe(self, message: str) -> str:
        return f"docker engine {self.host} (provider {self.provider}): {message}" if self.host else message


DEFAULT_ENGINE = Engine()


def docker(*args: str, input: bytes | None = None, check: bool = True, timeout: int = 120, engine: Engine = DEFAULT_ENGINE) -> str:
    try:
        result = subprocess.run(engine.argv(*args), input=input, capture_output=True, timeout=timeout, env=engine.environment())
    except subprocess.TimeoutExpired:
        if not engine.host:
            raise
        raise DockerError(engine.describe(f"docker {' '.join(args[:3])} ... gave no answer within {timeout} s")) from None
    if check and result.returncode != 0:
        raise DockerError(engine.describe(f"docker {' '.join(args[:3])} ... failed: {result.stderr.decode(errors='replace').strip()}"))
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


def create_network(inputs: dict[str, Any], engine: Engine = DEFAULT_ENGINE) -> None:
    args = ["network", "create", "--driver", inputs.get("driver", "bridge"), *_label_args(inputs.get("labels", []))]
    if inputs.get("internal"):
        args.append("--internal")
    if inputs.get("attachable"):
        # An overlay that containers (not only Swarm services) may join.
        args.append("--attachable")
    for key, value in sorted((inputs.get("options") or {}).items()):
        args += ["--opt", f"{key}={value}" if value != "" else key]
    for ipam in inputs.get("ipamConfigs", []):
        args += ["--subnet", ipam["subnet"]]
        if ipam.get("gateway"):
            args += ["--gateway", ipam["gateway"]]
    docker(*args, inputs["name"], engine=engine)


def create_volume(inputs: dict[str, Any], engine: Engine = DEFAULT_ENGINE) -> None:
    docker("volume", "create", *_label_args(inputs.get("labels", [])), inputs["name"], engine=engine)


MIB = 1024 * 1024


def _throttle_args(flag: str, devices: Iterable[dict[str, Any]] | None) -> list[str]:
    return [a for device in devices or [] for a in (flag, f"{device['path']}:{int(device['rate'])}")]


def restart_arg(inputs: dict[str, Any]) -> str:
    policy = inputs.get("restart") or "no"
    retries = int(inputs.get("maxRetryCount") or 0)
    return f"{policy}:{retries}" if policy == "on-failure" and retries else policy


def resource_args(inputs: dict[str, Any]) -> list[str]:
    """The limits `docker create` and `docker update` share: pulumi-docker's in-place inputs.
    Zero means "not set" (the Docker API ignores a zero limit), as it does upstream."""
    args = ["--restart", restart_arg(inputs)]
    if inputs.get("memory"):
        args += ["--memory", f"{int(inputs['memory'])}m"]
    if inputs.get("memorySwap"):
        # -1: unlimited swap. Unset: Docker's default (as much swap again as memory).
        args += ["--memory-swap", "-1" if int(inputs["memorySwap"]) == -1 else f"{int(inputs['memorySwap'])}m"]
    if inputs.get("memoryReservation"):
        args += ["--memory-reservation", f"{int(inputs['memoryReservation'])}m"]
    if inputs.get("cpuShares"):
        args += ["--cpu-shares", str(int(inputs["cpuShares"]))]
    if inputs.get("cpuSet"):
        args += ["--cpuset-cpus", inputs["cpuSet"]]
    args += _throttle_args("--device-read-bps", inputs.get("deviceReadBps"))
    args += _throttle_args("--device-read-iops", inputs.get("deviceReadIops"))
    args += _throttle_args("--device-write-bps", inputs.get("deviceWriteBps"))
    args += _throttle_args("--device-write-iops", inputs.get("deviceWriteIops"))
    return args


def container_update_args(container: str, news: dict[str, Any]) -> list[str]:
    """`docker update` with the new in-place settings, as pulumi-docker's update sends them all at once."""
    return ["update", *resource_args(news), container]


def container_create_args(inputs: dict[str, Any]) -> list[str]:
    """The `docker create` arguments equivalent to a docker.Container's inputs."""
    name = inputs["name"]
    args = ["create", "--name", name, "--hostname", inputs.get("hostname", name), *_label_args(inputs.get("labels", []))]
    for flag, key in (("--user", "user"), ("--domainname", "domainname"), ("--workdir", "workingDir"), ("--cpus", "cpus"),
                      ("--stop-signal", "stopSignal"), ("--ipc", "ipcMode"), ("--pid", "pidMode"), ("--userns", "usernsMode"),
                      ("--runtime", "runtime"), ("--platform", "platform"), ("--cgroupns", "cgroupnsMode"),
                      ("--cgroup-parent", "cgroupParent"), ("--gpus", "gpus")):
        if inputs.get(key):
            args += [flag, str(inputs[key])]
    args += resource_args(inputs)
    if inputs.get("cpuPeriod"):
        args += ["--cpu-period", str(int(inputs["cpuPeriod"]))]
    if inputs.get("cpuQuota"):
        args += ["--cpu-quota", str(int(inputs["cpuQuota"]))]
    if inputs.get("shmSize"):
        args += ["--shm-size", f"{int(inputs['shmSize'])}m"]
    for flag, key in (("--privileged", "privileged"), ("--read-only", "readOnly"), ("--publish-all", "publishAllPorts"),
                      ("--init", "init"), ("--tty", "tty"), ("--interactive", "stdinOpen"), ("--rm", "rm")):
        if inputs.get(key):
            args.append(flag)
    for flag, key in (("--dns", "dns"), ("--dns-option", "dnsOpts"), ("--dns-search", "dnsSearches"), ("--group-add", "groupAdds"),
                      ("--security-opt", "securityOpts"), ("--device-cgroup-rule", "deviceCgroupRules")):
        args += [a for value in inputs.get(key) or [] for a in (flag, str(value))]
    args += [a for host in inputs.get("hosts") or [] for a in ("--add-host", f"{host['host']}:{host['ip']}")]
    args += [a for u in inputs.get("ulimits") or [] for a in ("--ulimit", f"{u['name']}={int(u['soft'])}:{int(u['hard'])}")]
    args += [a for k, v in (inputs.get("sysctls") or {}).items() for a in ("--sysctl", f"{k}={v}")]
    args += [a for k, v in (inputs.get("storageOpts") or {}).items() for a in ("--storage-opt", f"{k}={v}")]
    for device in inputs.get("devices") or []:
        spec = ":".join(p for p in (device["hostPath"], device.get("containerPath") or device["hostPath"], device.get("permissions") or "rwm"))
        args += ["--device", spec]
    capabilities = inputs.get("capabilities") or {}
    args += [a for cap in capabilities.get("drops", []) for a in ("--cap-drop", cap)]
    args += [a for cap in capabilities.get("adds", []) for a in ("--cap-add", cap)]
    for env in inputs.get("envs", []):
        args += ["--env", env]
    health = inputs.get("healthcheck")
    if health:
        tests = health["tests"]
        # The CLI takes a shell string; quoting the exec form keeps every argument intact (the
        # provider's read turns the CMD-SHELL form back into the exec form it came from).
        args += ["--health-cmd", shlex.join(tests[1:]) if tests[0] == "CMD" else tests[1]]
        for flag, key in (("--health-interval", "interval"), ("--health-timeout", "timeout"), ("--health-start-period", "startPeriod"),
                          ("--health-start-interval", "startInterval")):
            if health.get(key) and health[key] != "0s":
                args += [flag, health[key]]
        if health.get("retries"):
            args += ["--health-retries", str(int(health["retries"]))]
    for volume in inputs.get("volumes", []):
        mode = ":ro" if volume.get("readOnly") else ""
        source = volume.get("volumeName") or volume.get("hostPath")
        args += ["--volume", f"{source}:{volume['containerPath']}{mode}" if source else volume["containerPath"]]
    for mount in inputs.get("mounts") or []:
        spec = f"type={mount['type']},target={mount['target']}" + (f",source={mount['source']}" if mount.get("source") else "")
        args += ["--mount", spec + (",readonly" if mount.get("readOnly") else "")]
    for port in inputs.get("ports", []):
        ip = port.get("ip") or "0.0.0.0"
        external = f"{int(port['external'])}" if port.get("external") else ""
        args += ["--publish", f"{ip}:{external}:{int(port['internal'])}/{port.get('protocol') or 'tcp'}"]
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
        args += ["--network", first["name"], *(["--ip", first["ipv4Address"]] if first.get("ipv4Address") else [])]
        args += [a for alias in first.get("aliases") or [] for a in ("--network-alias", alias)]
    elif inputs.get("networkMode"):
        args += ["--network", inputs["networkMode"]]
    entrypoint = inputs.get("entrypoints") or []
    if entrypoint:
        # The CLI takes one entrypoint word; the rest go before the command (read splits them back).
        args += ["--entrypoint", entrypoint[0]]
    args.append(inputs["image"])
    args += entrypoint[1:] + list(inputs.get("command") or [])
    return args


def container_logs(name: str, tail: int | None = None, engine: Engine = DEFAULT_ENGINE) -> str:
    """Both of the container's output streams, as `docker logs` prints them to a terminal."""
    args = engine.argv("logs", *(["--tail", str(tail)] if tail else []), name)
    return subprocess.run(args, capture_output=False, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env=engine.environment()).stdout


def wait_healthy(name: str, timeout: float, engine: Engine = DEFAULT_ENGINE) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = json.loads(docker("inspect", "--format", "{{json .State}}", name, engine=engine))
        health = (state.get("Health") or {}).get("Status")
        if health == "healthy":
            return
        if health == "unhealthy":
            probes = (state.get("Health") or {}).get("Log") or [{}]
            raise DockerError(engine.describe(f"{name} is unhealthy; last check said: {probes[-1].get('Output', '').strip()[:500]}"))
        if not state.get("Running"):
            raise DockerError(engine.describe(f"{name} stopped while starting: {container_logs(name, 30, engine)}"))
        time.sleep(1)
    raise DockerError(engine.describe(f"{name} was not healthy within {timeout:.0f} s; last log lines:\n"
                                      f"{container_logs(name, 30, engine)}"))


def run_container(inputs: dict[str, Any], fail_on_exit: bool = True, engine: Engine = DEFAULT_ENGINE) -> int | None:
    """Creates, attaches, fills and starts the container; for `attach`, waits for it to end and
    returns its exit code (a non-zero one raises unless fail_on_exit is False: pulumi-docker
    records it and leaves the verdict to the program; the replay has no program to decide)."""
    name = inputs["name"]
    docker(*container_create_args(inputs), engine=engine)
    for extra in inputs.get("networksAdvanced", [])[1:]:
        aliases = [a for alias in extra.get("aliases") or [] for a in ("--alias", alias)]
        address = ["--ip", extra["ipv4Address"]] if extra.get("ipv4Address") else []  # none: the engine picks one
        docker("network", "connect", *address, *aliases, extra["name"], name, engine=engine)
    if inputs.get("uploads"):
        docker("cp", "-", f"{name}:/", input=_uploads_tar(inputs["uploads"]), engine=engine)
    if inputs.get("start") is False:
        return None
    docker("start", name, engine=engine)
    if inputs.get("attach"):
        code = int(docker("wait", name, timeout=int(inputs.get("waitTimeout", 180)), engine=engine).strip())
        if code != 0 and fail_on_exit:
            raise DockerError(engine.describe(f"one-shot {name} exited {code}: {container_logs(name, engine=engine)}"))
        return code
    if inputs.get("wait"):
        wait_healthy(name, float(inputs.get("waitTimeout", 180)), engine)
    return None
