"""The stand-in docker provider on the real engine, over gRPC as Pulumi drives it, with a scratch
network and container of its own (medisys-standin-test-*; no stack): an in-place update keeps the
container, `read` sees hand-made changes and nothing else, RemoteImage finds a local image."""

from __future__ import annotations

import json
import os
import secrets
import subprocess

import pytest
from pulumi.runtime.proto import provider_pb2

from tests.live.conftest import docker_available
from tests.support.plugins import ROOT, plugin_stubs, struct, urn
from toolchain.providers.base import UNKNOWN, to_dict

pytestmark = pytest.mark.skipif(not docker_available(), reason="needs the Docker engine")

CONTAINER = "docker:index/container:Container"
NETWORK = "docker:index/network:Network"
SLOT = int(os.environ.get("MEDISYS_LIVE_SLOT", "0"))
PREFIX = f"medisys-standin-test-{SLOT}-{secrets.token_hex(2)}"
SUBNET = f"10.{211 + SLOT}.9"
IMAGE = "medisys/redis:" + (ROOT / "images" / "RELEASE").read_text().strip()


def inspect(name: str) -> dict:
    return json.loads(subprocess.run(["docker", "inspect", name], capture_output=True, text=True, check=True).stdout)[0]


@pytest.fixture(scope="module")
def docker_stub():
    stubs = plugin_stubs()
    try:
        yield next(stubs)("docker")
    finally:
        subprocess.run(["docker", "rm", "-f", f"{PREFIX}-c", f"{PREFIX}-gone"], capture_output=True)
        subprocess.run(["docker", "network", "rm", f"{PREFIX}-net"], capture_output=True)
        next(stubs, None)


def check(stub, token: str, inputs: dict) -> dict:
    response = stub.Check(provider_pb2.CheckRequest(urn=urn(token), news=struct(inputs)))
    assert list(response.failures) == []
    return to_dict(response.inputs)


@pytest.fixture(scope="module")
def container(docker_stub):
    """A running container made like the program makes its services; yields (id, inputs, outputs)."""
    network = check(docker_stub, NETWORK, {"name": f"{PREFIX}-net", "driver": "bridge",
                                           "ipamConfigs": [{"subnet": f"{SUBNET}.0/24", "gateway": f"{SUBNET}.1"}]})
    docker_stub.Create(provider_pb2.CreateRequest(urn=urn(NETWORK, "net"), properties=struct(network)))
    inputs = check(docker_stub, CONTAINER, {
        "name": f"{PREFIX}-c", "image": IMAGE, "hostname": f"{PREFIX}-c",
        "command": ["sleep", "3600"], "envs": ["A=1"], "labels": [{"label": "medisys.role", "value": "standin-test"}],
        "memory": 64, "memorySwap": 64, "cpus": "0.25", "restart": "unless-stopped", "mustRun": True,
        "capabilities": {"drops": ["ALL"]}, "securityOpts": ["no-new-privileges:true"], "stopTimeout": 2, "destroyGraceSeconds": 2,
        "healthcheck": {"tests": ["CMD", "sh", "-c", "test -d /"], "interval": "5s", "timeout": "3s", "retries": 3, "startPeriod": "1s"},
        "networksAdvanced": [{"name": f"{PREFIX}-net", "ipv4Address": f"{SUBNET}.20", "aliases": ["probe"]}],
    })
    created = docker_stub.Create(provider_pb2.CreateRequest(urn=urn(CONTAINER, "c"), properties=struct(inputs)))
    return created.id, inputs, to_dict(created.properties)


def read(stub, resource_id: str, inputs: dict, outputs: dict) -> provider_pb2.ReadResponse:
    return stub.Read(provider_pb2.ReadRequest(id=resource_id, urn=urn(CONTAINER, "c"), properties=struct(outputs), inputs=struct(inputs)))


def test_an_untouched_container_reads_back_as_its_inputs(docker_stub, container):
    resource_id, inputs, outputs = container
    response = read(docker_stub, resource_id, inputs, outputs)
    assert response.id == resource_id
    assert to_dict(response.inputs) == inputs and to_dict(response.properties) == outputs


def test_a_memory_change_updates_the_running_container_in_place(docker_stub, container):
    resource_id, inputs, outputs = container
    news = {**inputs, "memory": 96, "memorySwap": 96}
    diff = docker_stub.Diff(provider_pb2.DiffRequest(urn=urn(CONTAINER, "c"), id=resource_id, olds=struct(outputs),
                                                     old_inputs=struct(inputs), news=struct(news)))
    assert (sorted(diff.diffs), list(diff.replaces)) == (["memory", "memorySwap"], [])
    started = inspect(resource_id)["State"]["StartedAt"]
    docker_stub.Update(provider_pb2.UpdateRequest(urn=urn(CONTAINER, "c"), id=resource_id, olds=struct(outputs), news=struct(news)))
    live = inspect(f"{PREFIX}-c")
    assert live["Id"] == resource_id and live["State"]["Running"] and live["State"]["StartedAt"] == started  # not even restarted
    assert live["HostConfig"]["Memory"] == live["HostConfig"]["MemorySwap"] == 96 * 2**20
    # put it back for the next tests
    docker_stub.Update(provider_pb2.UpdateRequest(urn=urn(CONTAINER, "c"), id=resource_id, olds=struct(news), news=struct(inputs)))
    assert inspect(resource_id)["HostConfig"]["Memory"] == 64 * 2**20


def test_read_sees_limits_changed_by_hand(docker_stub, container):
    resource_id, inputs, outputs = container
    subprocess.run(["docker", "update", "--memory", "80m", "--memory-swap", "80m", "--restart", "no", resource_id], check=True, capture_output=True)
    try:
        refreshed = to_dict(read(docker_stub, resource_id, inputs, outputs).inputs)
        assert {k for k in inputs if refreshed.get(k) != inputs[k]} == {"memory", "memorySwap", "restart"}
        assert (refreshed["memory"], refreshed["restart"]) == (80, "no")
    finally:
        subprocess.run(["docker", "update", "--memory", "64m", "--memory-swap", "64m", "--restart", "unless-stopped", resource_id],
                       check=True, capture_output=True)


def test_a_stopped_container_reads_as_must_run_false_and_the_update_starts_it(docker_stub, container):
    resource_id, inputs, outputs = container
    subprocess.run(["docker", "stop", "--time", "1", resource_id], check=True, capture_output=True)
    refreshed = to_dict(read(docker_stub, resource_id, inputs, outputs).properties)
    assert refreshed["mustRun"] is False
    docker_stub.Update(provider_pb2.UpdateRequest(urn=urn(CONTAINER, "c"), id=resource_id, olds=struct(refreshed), news=struct(inputs)))
    assert inspect(resource_id)["State"]["Running"]


def test_a_removed_container_reads_as_gone(docker_stub):
    name = f"{PREFIX}-gone"
    inputs = check(docker_stub, CONTAINER, {"name": name, "image": IMAGE,
                                            "command": ["sleep", "60"], "mustRun": True})
    created = docker_stub.Create(provider_pb2.CreateRequest(urn=urn(CONTAINER, "gone"), properties=struct(inputs)))
    subprocess.run(["docker", "rm", "-f", name], check=True, capture_output=True)
    assert read(docker_stub, created.id, inputs, to_dict(created.properties)).id == ""


def test_remote_image_finds_a_local_image_by_name(docker_stub):
    name = IMAGE
    token = "docker:index/remoteImage:RemoteImage"
    inputs = check(docker_stub, token, {"name": name, "keepLocally": True})
    created = docker_stub.Create(provider_pb2.CreateRequest(urn=urn(token, "img"), properties=struct(inputs)))
    outputs = to_dict(created.properties)
    image = json.loads(subprocess.run(["docker", "image", "inspect", name], capture_output=True, text=True, check=True).stdout)[0]
    assert outputs["imageId"] == image["Id"] and created.id == image["Id"] + name
    assert outputs["repoDigest"] == ((image.get("RepoDigests") or [""])[0])
    docker_stub.Delete(provider_pb2.DeleteRequest(urn=urn(token, "img"), id=created.id, properties=created.properties))
    assert subprocess.run(["docker", "image", "inspect", name], capture_output=True).returncode == 0  # keepLocally


def test_a_failing_one_shot_job_is_recorded_with_its_output_not_failed(docker_stub):
    """pulumi-docker waits for an attached job and records exit_code and container_logs; the
    program (components/container.py after_success) decides what a non-zero exit means."""
    name = f"{PREFIX}-job"
    inputs = check(docker_stub, CONTAINER, {"name": name, "image": IMAGE, "command": ["sh", "-c", "echo half done; echo boom >&2; exit 3"],
                                            "attach": True, "logs": True, "mustRun": False, "restart": "no"})
    preview = to_dict(docker_stub.Create(provider_pb2.CreateRequest(urn=urn(CONTAINER, "job"), properties=struct(inputs), preview=True)).properties)
    assert preview["exitCode"] == preview["containerLogs"] == UNKNOWN
    try:
        created = docker_stub.Create(provider_pb2.CreateRequest(urn=urn(CONTAINER, "job"), properties=struct(inputs)))
        outputs = to_dict(created.properties)
        assert outputs["exitCode"] == 3
        assert "half done" in outputs["containerLogs"] and "boom" in outputs["containerLogs"]
        refreshed = read(docker_stub, created.id, inputs, outputs)
        assert to_dict(refreshed.inputs) == inputs and to_dict(refreshed.properties) == outputs
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)


def test_an_explicit_providers_host_gets_every_command(monkeypatch):
    """A provider configured like a docker.Provider (its `host`, here this machine's engine by its
    socket) sends each command to `docker -H HOST`, whatever DOCKER_HOST says; a container made
    through it runs, reads back as its inputs, and goes with delete."""
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:9")  # what the plugin inherits: nobody listens there
    stubs = plugin_stubs()
    stub = next(stubs)("docker")
    monkeypatch.undo()  # this test's own docker commands use the ambient engine
    name, subnet = f"{PREFIX}-explicit", f"10.{211 + SLOT}.8"
    try:
        stub.Configure(provider_pb2.ConfigureRequest(
            urn="urn:pulumi:dev::medisys-platform::pulumi:providers:docker::local-explicit", name="local-explicit",
            type="pulumi:providers:docker", args=struct({"host": "unix:///var/run/docker.sock"})))
        network = check(stub, NETWORK, {"name": f"{name}-net", "driver": "bridge",
                                        "ipamConfigs": [{"subnet": f"{subnet}.0/24", "gateway": f"{subnet}.1"}]})
        net = stub.Create(provider_pb2.CreateRequest(urn=urn(NETWORK, "xnet"), properties=struct(network)))
        inputs = check(stub, CONTAINER, {"name": name, "image": IMAGE, "command": ["sleep", "600"], "mustRun": True,
                                         "networksAdvanced": [{"name": f"{name}-net", "ipv4Address": f"{subnet}.20"}]})
        created = stub.Create(provider_pb2.CreateRequest(urn=urn(CONTAINER, "x"), properties=struct(inputs)))
        assert inspect(name)["State"]["Running"]
        refreshed = stub.Read(provider_pb2.ReadRequest(id=created.id, urn=urn(CONTAINER, "x"), properties=created.properties,
                                                       inputs=struct(inputs)))
        assert refreshed.id == created.id and to_dict(refreshed.inputs) == inputs
        stub.Delete(provider_pb2.DeleteRequest(urn=urn(CONTAINER, "x"), id=created.id, properties=created.properties))
        stub.Delete(provider_pb2.DeleteRequest(urn=urn(NETWORK, "xnet"), id=net.id, properties=net.properties))
        assert subprocess.run(["docker", "inspect", name], capture_output=True).returncode != 0
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
        subprocess.run(["docker", "network", "rm", f"{name}-net"], capture_output=True)
        next(stubs, None)
