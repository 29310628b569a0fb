"""Stand-in docker provider: Network, Volume and Container, with the inputs and behaviour of
pulumi-docker that this program relies on (uploads before start, fixed addresses on several
networks, `wait` for the health check, `attach` for one-shot jobs, a stop grace period on
removal). Everything goes through toolchain/providers/docker_engine.py."""

from __future__ import annotations

import json
from typing import Any

from toolchain.providers.base import UNKNOWN, ProviderError, ResourceType
from toolchain.providers.docker_engine import DockerError, create_network, create_volume, docker, run_container


def _inspect(kind: str, name: str) -> dict[str, Any] | None:
    text = docker(kind, "inspect", "--format", "{{json .}}", name, check=False).strip()
    return json.loads(text) if text else None


def _existing(kind: str, name: str) -> dict[str, Any]:
    found = _inspect(kind, name)
    if found is None:
        raise ProviderError(f"the {kind} {name} vanished right after it was created")
    return found


def _removed(call) -> None:
    try:
        call()
    except DockerError as error:
        if "No such" not in str(error) and "not found" not in str(error):
            raise


class DockerObject(ResourceType):
    """A network or volume: present while `docker <kind> inspect` finds it, removed with `rm`."""

    kind = ""

    def read(self, resource_id: str, state: dict[str, Any], config: dict[str, Any]) -> dict[str, Any] | None:
        return state if _inspect(self.kind, resource_id) else None

    def delete(self, resource_id: str, state: dict[str, Any], config: dict[str, Any]) -> None:
        _removed(lambda: docker(self.kind, "rm", resource_id))


class Network(DockerObject):
    token = "docker:index/network:Network"
    kind = "network"

    def create(self, inputs: dict[str, Any], config: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        create_network(inputs)
        return _existing("network", inputs["name"])["Id"], inputs


class Volume(DockerObject):
    token = "docker:index/volume:Volume"
    kind = "volume"

    def create(self, inputs: dict[str, Any], config: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        create_volume(inputs)
        return inputs["name"], {**inputs, "mountpoint": _existing("volume", inputs["name"])["Mountpoint"]}

    def preview_outputs(self, inputs: dict[str, Any]) -> dict[str, Any]:
        return {**inputs, "mountpoint": UNKNOWN}


class Container(ResourceType):
    token = "docker:index/container:Container"
    # Settings of the provider's own behaviour, not of the container: changing them never replaces it.
    updatable = frozenset({"destroyGraceSeconds", "wait", "waitTimeout", "mustRun", "logs", "rm", "attach"})

    def check(self, inputs: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        failures = [(key, f"{key} is required") for key in ("name", "image") if not inputs.get(key)]
        for index, network in enumerate(inputs.get("networksAdvanced") or []):
            if not network.get("ipv4Address"):
                failures.append((f"networksAdvanced[{index}].ipv4Address",
                                 "the stand-in provider attaches containers at fixed addresses only: set ipv4_address"))
        return inputs, failures

    def preview_outputs(self, inputs: dict[str, Any]) -> dict[str, Any]:
        return {**inputs, "exitCode": UNKNOWN} if inputs.get("attach") else dict(inputs)

    def create(self, inputs: dict[str, Any], config: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        name = inputs["name"]
        if _inspect("container", name):
            raise ProviderError(f"a container named {name} already exists and is not in this stack's state: "
                                f"remove it (docker rm -f {name}) or import it, then run `pulumi up` again")
        try:
            run_container(inputs)
        except DockerError as error:
            # Leave nothing half-made behind: the next `up` creates the container again from scratch.
            _removed(lambda: docker("rm", "--force", "--volumes", name))
            raise ProviderError(str(error)) from error
        state = _existing("container", name)
        outputs = dict(inputs)
        if inputs.get("attach"):
            outputs["exitCode"] = state["State"]["ExitCode"]
        return state["Id"], outputs

    def read(self, resource_id: str, state: dict[str, Any], config: dict[str, Any]) -> dict[str, Any] | None:
        live = _inspect("container", resource_id)
        if live is None:
            return None
        if state.get("mustRun") and not live["State"]["Running"]:
            # pulumi-docker reports a stopped must-run container as gone, so `up --refresh` starts a new one.
            return None
        return state

    def delete(self, resource_id: str, state: dict[str, Any], config: dict[str, Any]) -> None:
        grace = int(state.get("destroyGraceSeconds") or 0)
        if grace:
            _removed(lambda: docker("stop", "--time", str(grace), resource_id, timeout=grace + 60))
        _removed(lambda: docker("rm", "--force", "--volumes", resource_id))


def docker_types() -> list[ResourceType]:
    return [Network(), Volume(), Container()]
