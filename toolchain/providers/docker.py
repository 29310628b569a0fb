"""Stand-in docker provider: Network, Volume, Container and RemoteImage, with the inputs and
behaviour of pulumi-docker 5.2.0 (its Terraform provider, kreuzwerker/terraform-provider-docker).
Everything goes through toolchain/providers/docker_engine.py, to the engine the provider's
configuration names (toolchain/providers/docker_host.py: `host`, TLS materials, certPath, sshOpts,
as upstream connects); a provider without those settings uses the ambient engine (DOCKER_HOST).

Diff: which inputs update in place and which replace is upstream's schema (the Terraform
`ForceNew` flags of terraform-provider-docker v4.5.0, the newest release in reach; see
`Container.updatable`). An in-place update does what upstream's does: `docker update` for the
restart policy and resource limits, `docker start` when `mustRun` comes back on, nothing else.

Read: the live object, by its id, for the properties upstream reads back, shaped like the
program's inputs so that nothing shows as changed when nothing was changed by hand (a property
the program did not set is never compared). Beyond upstream, the stand-in also compares the
program's own environment entries, labels and network attachments (upstream reads none of them).
"""

from __future__ import annotations

import json
import shlex
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from toolchain.providers.base import UNKNOWN, ProviderError, ResourceType
from toolchain.providers.docker_engine import (
    DEFAULT_ENGINE,
    MIB,
    DockerError,
    Engine,
    container_logs,
    container_update_args,
    create_network,
    create_volume,
    docker,
    run_container,
)
from toolchain.providers.docker_host import engine_for


def _missing(error: DockerError) -> bool:
    text = str(error).lower()
    return "no such" in text or "not found" in text


def _inspect(kind: str, name: str, engine: Engine = DEFAULT_ENGINE) -> dict[str, Any] | None:
    if not engine.host:
        text = docker(kind, "inspect", "--format", "{{json .}}", name, check=False).strip()
        return json.loads(text) if text else None
    # A configured engine that cannot be reached is an error (upstream: its ping fails), never "gone":
    # a refresh must not drop every resource of a host that is down for a moment.
    try:
        text = docker(kind, "inspect", "--format", "{{json .}}", name, engine=engine).strip()
    except DockerError as error:
        if _missing(error):
            return None
        raise
    return json.loads(text) if text else None


def _existing(kind: str, name: str, engine: Engine = DEFAULT_ENGINE) -> dict[str, Any]:
    found = _inspect(kind, name, engine)
    if found is None:
        raise ProviderError(engine.describe(f"the {kind} {name} vanished right after it was created"))
    return found


def _removed(call) -> None:
    try:
        call()
    except DockerError as error:
        # Already gone is done: the engine says "No such container", "no such volume" or "not found".
        text = str(error).lower()
        if "no such" not in text and "not found" not in text:
            raise


def overlay(state: dict[str, Any], live: dict[str, Any]) -> dict[str, Any]:
    """The recorded state with each property the program set replaced by its live value."""
    return {**state, **{k: v for k, v in live.items() if state.get(k) is not None}}


def _labels(live: dict[str, str] | None, program: list[dict[str, str]]) -> list[dict[str, str]]:
    live = live or {}
    return [{"label": item["label"], "value": live[item["label"]]} for item in program if item["label"] in live]


def _only(keys: dict[str, Any], value: dict[str, Any]) -> dict[str, Any]:
    return {k: value[k] for k in keys if k in value}


def go_duration(nanoseconds: int) -> str:
    """A duration as Go's time.Duration.String() writes it (upstream reads health check timings so)."""
    if nanoseconds == 0:
        return "0s"
    sign, ns = ("-" if nanoseconds < 0 else ""), abs(nanoseconds)

    def decimal(value: int, scale: int) -> str:
        whole, fraction = divmod(value, scale)
        digits = f"{fraction:0{len(str(scale)) - 1}d}".rstrip("0")
        return f"{whole}.{digits}" if digits else str(whole)

    if ns < 1_000:
        return f"{sign}{ns}ns"
    if ns < 1_000_000:
        return f"{sign}{decimal(ns, 1_000)}µs"
    if ns < 1_000_000_000:
        return f"{sign}{decimal(ns, 1_000_000)}ms"
    hours, rest = divmod(ns, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    text = f"{decimal(rest, 1_000_000_000)}s"
    if hours or minutes:
        text = f"{minutes}m{text}"
    if hours:
        text = f"{hours}h{text}"
    return sign + text


def nano_cpus(nano: int) -> str:
    """NanoCpus as upstream's nanoInt64ToDecimalString writes it: 1 CPU reads back as "1.0"."""
    if nano == 0:
        return "0"
    text = f"{nano // 10**9}.{nano % 10**9:09d}"
    if text.count("0") == 9:
        return str((Decimal(nano) / Decimal(10**9)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))
    return text.rstrip("0")


class DockerObject(ResourceType):
    """A network or volume: present while `docker <kind> inspect` finds it, removed with `rm`."""

    kind = ""

    def live(self, found: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
        return {}

    def read(self, resource_id: str, state: dict[str, Any], config: dict[str, Any]) -> dict[str, Any] | None:
        found = _inspect(self.kind, resource_id, engine_for(config))
        return overlay(state, self.live(found, state)) if found else None

    def delete(self, resource_id: str, state: dict[str, Any], config: dict[str, Any]) -> None:
        engine = engine_for(config)
        _removed(lambda: docker(self.kind, "rm", resource_id, engine=engine))


# Inputs a stand-in network supports; any other is refused by `check` (never silently ignored).
NETWORK_INPUTS = frozenset({"name", "driver", "internal", "attachable", "options", "ipamConfigs", "labels"})


class Network(DockerObject):
    token = "docker:index/network:Network"
    kind = "network"
    # Every network input replaces it (upstream has no update for networks).

    def check(self, inputs: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        failures = [(key, f"the medisys stand-in docker provider does not implement the network input {key}; "
                          f"drop it or use the upstream pulumi-docker plugin") for key in sorted(set(inputs) - NETWORK_INPUTS)
                    if inputs[key] is not None]
        return dict(inputs), failures

    def create(self, inputs: dict[str, Any], config: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        engine = engine_for(config)
        create_network(inputs, engine)
        return _existing("network", inputs["name"], engine)["Id"], inputs

    def live(self, found: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
        ipam = []
        for program, config in zip(state.get("ipamConfigs") or [], (found.get("IPAM") or {}).get("Config") or []):
            ipam.append(_only(program, {"subnet": config.get("Subnet"), "gateway": config.get("Gateway"),
                                        "ipRange": config.get("IPRange"), "auxAddress": config.get("AuxiliaryAddresses")}))
        return {"name": found["Name"], "driver": found["Driver"], "internal": found["Internal"], "attachable": found["Attachable"],
                "ipv6": found["EnableIPv6"], "labels": _labels(found.get("Labels"), state.get("labels") or []),
                "ipamConfigs": ipam, "options": found.get("Options") or {}}


class Volume(DockerObject):
    token = "docker:index/volume:Volume"
    kind = "volume"
    # Every volume input replaces it (a cluster volume's availability aside, which the stand-in does not make).

    def create(self, inputs: dict[str, Any], config: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        engine = engine_for(config)
        create_volume(inputs, engine)
        return inputs["name"], {**inputs, "mountpoint": _existing("volume", inputs["name"], engine)["Mountpoint"]}

    def preview_outputs(self, inputs: dict[str, Any]) -> dict[str, Any]:
        return {**inputs, "mountpoint": UNKNOWN}

    def live(self, found: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
        return {"name": found["Name"], "driver": found["Driver"], "driverOpts": found.get("Options") or {},
                "labels": _labels(found.get("Labels"), state.get("labels") or []), "mountpoint": found["Mountpoint"]}


# Inputs a stand-in container supports; any other is refused by `check` (never silently ignored).
CONTAINER_INPUTS = frozenset({
    "name", "image", "command", "entrypoints", "envs", "user", "hostname", "domainname", "workingDir", "labels",
    "memory", "memorySwap", "memoryReservation", "cpus", "cpuShares", "cpuSet", "cpuPeriod", "cpuQuota", "shmSize",
    "restart", "maxRetryCount", "deviceReadBps", "deviceReadIops", "deviceWriteBps", "deviceWriteIops",
    "capabilities", "securityOpts", "privileged", "readOnly", "init", "tty", "stdinOpen", "rm", "start", "mustRun",
    "wait", "waitTimeout", "attach", "logs", "removeVolumes", "destroyGraceSeconds", "containerReadRefreshTimeoutMilliseconds",
    "healthcheck", "volumes", "mounts", "ports", "publishAllPorts", "tmpfs", "logDriver", "logOpts", "stopTimeout",
    "stopSignal", "networksAdvanced", "networkMode", "uploads", "dns", "dnsOpts", "dnsSearches", "hosts", "ulimits",
    "sysctls", "storageOpts", "devices", "groupAdds", "ipcMode", "pidMode", "usernsMode", "runtime", "platform",
    "cgroupnsMode", "cgroupParent", "gpus", "deviceCgroupRules",
})

# Upstream's schema defaults, which its `check` adds to the inputs (so they are compared on refresh).
CONTAINER_DEFAULTS = {
    "rm": False, "readOnly": False, "start": True, "wait": False, "waitTimeout": 60, "attach": False, "logs": False,
    "mustRun": True, "restart": "no", "removeVolumes": True, "memoryReservation": 0, "tty": False, "stdinOpen": False,
    "containerReadRefreshTimeoutMilliseconds": 15000,
}

THROTTLES = {"deviceReadBps": "BlkioDeviceReadBps", "deviceReadIops": "BlkioDeviceReadIOps",
             "deviceWriteBps": "BlkioDeviceWriteBps", "deviceWriteIops": "BlkioDeviceWriteIOps"}

# What upstream's update changes on the running container (`docker update`).
RESOURCE_INPUTS = frozenset({"restart", "maxRetryCount", "cpuShares", "memory", "memoryReservation", "cpuSet", "memorySwap", *THROTTLES})


class Container(ResourceType):
    token = "docker:index/container:Container"
    # Inputs without ForceNew in upstream's schema: a change updates the container in place.
    # RESOURCE_INPUTS through `docker update`; mustRun (and start) by starting a stopped container;
    # the provider's own settings (wait, logs, destroyGraceSeconds, ...) only change the state.
    # Upstream quirk, kept: healthcheck, tmpfs, init, cpuPeriod and cpuQuota are not ForceNew
    # either, so a change to them "updates" the state and leaves the running container as it was.
    updatable = RESOURCE_INPUTS | frozenset({
        "mustRun", "start", "rm", "attach", "logs", "wait", "waitTimeout", "destroyGraceSeconds", "removeVolumes",
        "containerReadRefreshTimeoutMilliseconds", "healthcheck", "tmpfs", "init", "cpuPeriod", "cpuQuota",
    })

    def check(self, inputs: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        failures = [(key, f"{key} is required") for key in ("name", "image") if not inputs.get(key)]
        unsupported = sorted(set(inputs) - CONTAINER_INPUTS)
        failures += [(key, f"the medisys stand-in docker provider does not implement the container input {key}; "
                           f"drop it or use the upstream pulumi-docker plugin") for key in unsupported]
        checked = {**CONTAINER_DEFAULTS, **{k: v for k, v in inputs.items() if v is not None}}
        if checked.get("ports"):
            checked["ports"] = [{"ip": "0.0.0.0", "protocol": "tcp", **port} for port in checked["ports"]]
        if checked.get("uploads"):
            checked["uploads"] = [{"executable": False, **upload} for upload in checked["uploads"]]
        return checked, failures

    def preview_outputs(self, inputs: dict[str, Any]) -> dict[str, Any]:
        if not inputs.get("attach"):
            return dict(inputs)
        return {**inputs, "exitCode": UNKNOWN, **({"containerLogs": UNKNOWN} if inputs.get("logs") else {})}

    def create(self, inputs: dict[str, Any], config: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        name = inputs["name"]
        engine = engine_for(config)
        if _inspect("container", name, engine):
            raise ProviderError(engine.describe(f"a container named {name} already exists and is not in this stack's state: "
                                                f"remove it (docker rm -f {name}) or import it, then run `pulumi up` again"))
        try:
            # As upstream: an attached job's non-zero exit is recorded (exitCode, and its output in
            # containerLogs when `logs` is set), not a failure; the program decides what it means.
            run_container(inputs, fail_on_exit=False, engine=engine)
        except DockerError as error:
            # Leave nothing half-made behind: the next `up` creates the container again from scratch.
            _removed(lambda: docker("rm", "--force", "--volumes", name, engine=engine))
            raise ProviderError(str(error)) from error
        state = _existing("container", name, engine)
        outputs = dict(inputs)
        if inputs.get("attach"):
            outputs["exitCode"] = state["State"]["ExitCode"]
            if inputs.get("logs"):
                outputs["containerLogs"] = container_logs(name, engine=engine)
        return state["Id"], outputs

    def update(self, resource_id: str, olds: dict[str, Any], news: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
        engine = engine_for(config)
        if any(olds.get(key) != news.get(key) for key in RESOURCE_INPUTS):
            try:
                docker(*container_update_args(resource_id, news), engine=engine)
            except DockerError as error:
                raise ProviderError(f"docker update of {news.get('name', resource_id)}: {error}") from error
        if not olds.get("mustRun", True) and news.get("mustRun", True) and news.get("start", True):
            # Upstream's refresh records a stopped must-run container as mustRun=false; this update starts it.
            docker("start", resource_id, engine=engine)
        outputs = dict(news)
        for computed in ("exitCode", "containerLogs"):
            if computed in olds and news.get("attach"):
                outputs[computed] = olds[computed]
        return outputs

    def read(self, resource_id: str, state: dict[str, Any], config: dict[str, Any]) -> dict[str, Any] | None:
        found = _inspect("container", resource_id, engine_for(config))
        if found is None:
            return None
        outputs = overlay(state, container_live(found, state))
        if not found["State"]["Running"]:
            if "exitCode" in state:
                outputs["exitCode"] = found["State"]["ExitCode"]
            if state.get("mustRun", True) and not state.get("attach"):
                # Upstream: a stopped must-run container reads as mustRun=false, so the next update starts it.
                outputs["mustRun"] = False
        return outputs

    def delete(self, resource_id: str, state: dict[str, Any], config: dict[str, Any]) -> None:
        engine = engine_for(config)
        grace = int(state.get("destroyGraceSeconds") or 0)
        if grace and not state.get("attach"):
            _removed(lambda: docker("stop", "--time", str(grace), resource_id, timeout=grace + 60, engine=engine))
        volumes = ["--volumes"] if state.get("removeVolumes", True) else []
        _removed(lambda: docker("rm", "--force", *volumes, resource_id, engine=engine))


def container_live(found: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
    """The container's live properties, in the shape of the program's inputs (see the module doc)."""
    config, host, network = found["Config"], found["HostConfig"], found.get("NetworkSettings") or {}
    live: dict[str, Any] = {
        "name": found["Name"].lstrip("/"),
        "image": found["Image"] if str(state.get("image", "")).startswith("sha256:") else config["Image"],
        "hostname": config.get("Hostname"),
        "domainname": config.get("Domainname"),
        "user": config.get("User"),
        "workingDir": config.get("WorkingDir"),
        "restart": (host.get("RestartPolicy") or {}).get("Name") or "no",
        "maxRetryCount": (host.get("RestartPolicy") or {}).get("MaximumRetryCount") or 0,
        "memory": (host.get("Memory") or 0) // MIB,
        "memoryReservation": (host.get("MemoryReservation") or 0) // MIB,
        "memorySwap": swap // MIB if (swap := host.get("MemorySwap") or 0) > 0 else swap,
        "shmSize": (host.get("ShmSize") or 0) // MIB,
        "cpuShares": host.get("CpuShares") or 0,
        "cpuSet": host.get("CpusetCpus") or "",
        "privileged": bool(host.get("Privileged")),
        "readOnly": bool(host.get("ReadonlyRootfs")),
        "publishAllPorts": bool(host.get("PublishAllPorts")),
        "rm": bool(host.get("AutoRemove")),
        "init": bool(host.get("Init")),
        "securityOpts": host.get("SecurityOpt") or [],
        "logDriver": (host.get("LogConfig") or {}).get("Type"),
        "logOpts": (host.get("LogConfig") or {}).get("Config") or {},
        "tmpfs": host.get("Tmpfs") or {},
        "sysctls": host.get("Sysctls") or {},
        "dns": host.get("Dns") or [],
        "dnsOpts": host.get("DnsOptions") or [],
        "dnsSearches": host.get("DnsSearch") or [],
        "groupAdds": host.get("GroupAdd") or [],
        "tty": bool(config.get("Tty")),
        "stdinOpen": bool(config.get("OpenStdin")),
        "stopSignal": config.get("StopSignal") or "",
        "stopTimeout": config.get("StopTimeout"),
        **{key: [{"path": d["Path"], "rate": d["Rate"]} for d in host.get(field) or []] for key, field in THROTTLES.items()},
    }
    if host.get("NanoCpus"):
        live["cpus"] = nano_cpus(host["NanoCpus"])
    if host.get("CapAdd") or host.get("CapDrop"):
        live["capabilities"] = _only(state.get("capabilities") or {"adds": 1, "drops": 1},
                                     {"adds": host.get("CapAdd") or [], "drops": host.get("CapDrop") or []})
    live.update(_command(config, state))
    if state.get("envs"):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in config.get("Env") or [])
        live["envs"] = [f"{key}={env[key]}" for key, _, _ in (e.partition("=") for e in state["envs"]) if key in env]
    if state.get("labels"):
        live["labels"] = _labels(config.get("Labels"), state["labels"])
    if state.get("healthcheck") and config.get("Healthcheck"):
        live["healthcheck"] = _healthcheck(config["Healthcheck"], state["healthcheck"])
    if state.get("ports") and (found["State"]["Running"] or state.get("mustRun", True)):
        live["ports"] = _ports(network.get("Ports") or {}, state["ports"])
    if state.get("networksAdvanced"):
        live["networksAdvanced"] = _networks(found, state["networksAdvanced"])
    return live


def _command(config: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
    entrypoint, cmd = list(config.get("Entrypoint") or []), list(config.get("Cmd") or [])
    wanted = state.get("entrypoints") or []
    if len(wanted) > 1 and len(entrypoint) == 1:
        # The stand-in passed the entrypoint's further words first in the command (the CLI takes one).
        entrypoint, cmd = entrypoint + cmd[: len(wanted) - 1], cmd[len(wanted) - 1:]
    return {"entrypoints": entrypoint, "command": cmd}


def _healthcheck(live: dict[str, Any], program: dict[str, Any]) -> dict[str, Any]:
    tests = list(live.get("Test") or [])
    wanted = program.get("tests") or []
    if tests[:1] == ["CMD-SHELL"] and wanted[:1] == ["CMD"] and tests[1:] == [shlex.join(wanted[1:])]:
        tests = wanted  # the stand-in's own CLI encoding of an exec-form test
    values = {"tests": tests, "retries": live.get("Retries") or 0,
              **{key: go_duration(live.get(field) or 0) for key, field in
                 (("interval", "Interval"), ("timeout", "Timeout"), ("startPeriod", "StartPeriod"), ("startInterval", "StartInterval"))}}
    return _only(program, values)


def _ports(bindings: dict[str, Any], program: list[dict[str, Any]]) -> list[dict[str, Any]]:
    live = []
    for key, hosts in sorted(bindings.items()):
        internal, _, protocol = key.partition("/")
        for binding in hosts or []:
            live.append({"internal": int(internal), "external": int(binding["HostPort"]), "ip": binding["HostIp"],
                         "protocol": protocol or "tcp"})
    # Docker lists an IPv6 twin of a binding to every address; the program names its addresses.
    named = {(p.get("ip") or "0.0.0.0") for p in program}
    live = [p for p in live if p["ip"] in named or not (p["ip"] == "::" and "0.0.0.0" in named)]
    shape = set().union(*(set(p) for p in program))
    order = {(p["internal"], p.get("protocol", "tcp"), p.get("ip", "0.0.0.0")): i for i, p in enumerate(program)}
    live.sort(key=lambda p: (order.get((p["internal"], p["protocol"], p["ip"]), len(order)), p["internal"], p["ip"]))
    return [{k: v for k, v in p.items() if k in shape} for p in live]


def _networks(found: dict[str, Any], program: list[dict[str, Any]]) -> list[dict[str, Any]]:
    attached = (found.get("NetworkSettings") or {}).get("Networks") or {}
    docker_added = {found["Id"][:12], found["Name"].lstrip("/"), found["Config"].get("Hostname")}
    shape = set().union(*(set(n) for n in program))
    wanted = {n["name"]: n for n in program}
    result = []
    for name in [n["name"] for n in program] + sorted(set(attached) - set(wanted)):
        if name not in attached:
            continue
        live = attached[name]
        aliases = live.get("Aliases") or []
        mine = (wanted.get(name) or {}).get("aliases") or []
        program_entry = wanted.get(name) or {}
        # A fixed address reads back from IPAMConfig (as upstream reads it); an engine-picked one
        # is not the program's and reads as unset (a network the program does not list is drift: shown whole).
        picked = live.get("IPAddress", "") if (not program_entry or program_entry.get("ipv4Address")) else ""
        fixed = (live.get("IPAMConfig") or {}).get("IPv4Address") or picked
        entry = {"name": name, "ipv4Address": fixed,
                 "aliases": [a for a in mine if a in aliases] + [a for a in aliases if a not in mine and a not in docker_added]}
        keys = set(program_entry) if program_entry else shape
        result.append({k: v for k, v in entry.items() if k in keys and (k != "aliases" or v or "aliases" in program_entry)})
    return result


class RemoteImage(ResourceType):
    """An image by name, found locally (or pulled), as docker.RemoteImage without `build`."""

    token = "docker:index/remoteImage:RemoteImage"
    updatable = frozenset({"keepLocally", "forceRemove"})

    def check(self, inputs: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        failures = [] if inputs.get("name") else [("name", "name is required: the image's name, e.g. medisys/app:TAG")]
        if inputs.get("build"):
            failures.append(("build", "the stand-in docker provider does not build images: build them with scripts/build-images "
                                      "and name the image"))
        return {"platform": "", **inputs}, failures

    def preview_outputs(self, inputs: dict[str, Any]) -> dict[str, Any]:
        return {**inputs, "imageId": UNKNOWN, "repoDigest": UNKNOWN}

    @staticmethod
    def _find(name: str, engine: Engine = DEFAULT_ENGINE) -> dict[str, Any] | None:
        return _inspect("image", name, engine)

    def _outputs(self, inputs: dict[str, Any], image: dict[str, Any]) -> dict[str, Any]:
        digests = image.get("RepoDigests") or []
        repo_digest = digests[0] if len(digests) == 1 else next(
            (d for d in digests if d.startswith(inputs["name"].rsplit(":", 1)[0] + "@")), "")
        return {**inputs, "imageId": image["Id"], "repoDigest": repo_digest}

    def create(self, inputs: dict[str, Any], config: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        name = inputs["name"]
        engine = engine_for(config)
        image = self._find(name, engine)
        if image is None:
            try:
                docker("pull", *(["--platform", inputs["platform"]] if inputs.get("platform") else []), name, timeout=600,
                       engine=engine)
            except DockerError as error:
                raise ProviderError(f"the image {name} is not on the Docker host and could not be pulled: {error}") from error
            image = self._find(name, engine)
            if image is None:
                raise ProviderError(engine.describe(f"unable to find or pull image {name}"))
        # Upstream's id: the image id followed by the name.
        return image["Id"] + name, self._outputs(inputs, image)

    def update(self, resource_id: str, olds: dict[str, Any], news: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
        return {**olds, **news}

    def read(self, resource_id: str, state: dict[str, Any], config: dict[str, Any]) -> dict[str, Any] | None:
        image = self._find(state["name"], engine_for(config))
        return None if image is None else {**state, **self._outputs(state, image)}

    def delete(self, resource_id: str, state: dict[str, Any], config: dict[str, Any]) -> None:
        if state.get("keepLocally"):
            return
        force = ["--force"] if state.get("forceRemove") else []
        engine = engine_for(config)
        _removed(lambda: docker("image", "rm", *force, state["name"], engine=engine))


def docker_types() -> list[ResourceType]:
    return [Network(), Volume(), Container(), RemoteImage()]
