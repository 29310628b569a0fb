"""The stand-in providers against upstream's behaviour (pulumi-docker 5.2.0, pulumi-random 4.21.4,
pulumi-tls 5.6.2): the diff of every docker input, `read` of a live container shaped like the
program's inputs, and every random and tls type with upstream's outputs. Over gRPC like the
engine drives them; no Docker (the live side is in tests/live/test_standin_docker.py)."""

from __future__ import annotations

import base64
import hashlib
import uuid

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from pulumi.runtime.proto import provider_pb2

from tests.support.plugins import plugin_stubs, struct, urn
from toolchain.providers import docker as docker_provider
from toolchain.providers.base import UNKNOWN, to_dict
from toolchain.providers.docker import Container, RemoteImage, container_live, go_duration, nano_cpus, overlay
from toolchain.providers.docker_engine import container_create_args, container_update_args

CONTAINER = "docker:index/container:Container"


@pytest.fixture(scope="module")
def plugin():
    yield from plugin_stubs()


# --- docker: the diff -------------------------------------------------------------------------------

# A container as the program declares one (components/container.py), after the provider's check.
BASE = Container().check({
    "name": "medisys-dev-app-1", "image": "medisys/app:1", "hostname": "medisys-dev-app-1",
    "envs": ["PORT=8000", "DB_HOST=10.0.2.10"], "labels": [{"label": "medisys.role", "value": "app"}],
    "memory": 256, "memorySwap": 256, "cpus": "0.5", "restart": "unless-stopped", "mustRun": True,
    "capabilities": {"drops": ["ALL"]}, "securityOpts": ["no-new-privileges:true"], "logDriver": "json-file",
    "logOpts": {"max-size": "10m"}, "stopTimeout": 30, "destroyGraceSeconds": 30, "wait": True, "waitTimeout": 180,
    "healthcheck": {"tests": ["CMD", "curl", "-fsS", "http://127.0.0.1:8000/health"], "interval": "5s", "timeout": "3s",
                    "retries": 5, "startPeriod": "10s"},
    "networksAdvanced": [{"name": "medisys-dev-production", "ipv4Address": "10.211.1.20", "aliases": ["app-1"]}],
    "ports": [{"internal": 8000, "external": 18000, "ip": "127.0.0.1"}],
    "volumes": [{"volumeName": "data", "containerPath": "/data"}],
    "uploads": [{"file": "/etc/app.conf", "content": "x"}],
})[0]

# Upstream (terraform-provider-docker v4.5.0, resource_docker_container.go): the inputs without
# ForceNew. docker update changes the first group on the running container.
IN_PLACE = {
    "restart": "always", "maxRetryCount": 3, "cpuShares": 512, "memory": 512, "memoryReservation": 128, "memorySwap": 1024,
    "cpuSet": "0", "deviceReadBps": [{"path": "/dev/sda", "rate": 1048576}], "deviceReadIops": [{"path": "/dev/sda", "rate": 100}],
    "deviceWriteBps": [{"path": "/dev/sda", "rate": 1048576}], "deviceWriteIops": [{"path": "/dev/sda", "rate": 100}],
    "mustRun": False, "start": False,
}
PROVIDER_ONLY = {"wait": False, "waitTimeout": 60, "destroyGraceSeconds": 0, "rm": True, "attach": True, "logs": True,
                 "removeVolumes": False, "containerReadRefreshTimeoutMilliseconds": 1000}
REPLACING = {
    "name": "other", "image": "medisys/app:2", "hostname": "h", "envs": ["PORT=9000"], "command": ["x"], "entrypoints": ["/bin/sh"],
    "user": "1000", "labels": [{"label": "medisys.role", "value": "db"}], "cpus": "1.0",
    "capabilities": {"drops": ["NET_RAW"]}, "securityOpts": [], "logDriver": "local", "logOpts": {"max-size": "1m"},
    "stopTimeout": 10, "ports": [{"internal": 8000, "external": 18001, "ip": "127.0.0.1", "protocol": "tcp"}],
    "volumes": [], "uploads": [{"file": "/etc/app.conf", "content": "y", "executable": False}], "privileged": True,
    "readOnly": True, "networksAdvanced": [{"name": "medisys-dev-production", "ipv4Address": "10.211.1.21"}],
    "workingDir": "/srv", "dns": ["1.1.1.1"], "shmSize": 128, "sysctls": {"net.core.somaxconn": "1024"},
    "ulimits": [{"name": "nofile", "soft": 1024, "hard": 2048}], "hosts": [{"host": "db", "ip": "10.0.0.1"}],
    "tty": True, "groupAdds": ["1"], "stopSignal": "SIGINT", "domainname": "example", "publishAllPorts": True,
}


def diff(stub, old: dict, new: dict) -> provider_pb2.DiffResponse:
    return stub.Diff(provider_pb2.DiffRequest(urn=urn(CONTAINER), id="x", olds=struct(old), old_inputs=struct(old), news=struct(new)))


@pytest.mark.parametrize("key", sorted(IN_PLACE))
def test_container_input_updates_in_place_like_upstream(plugin, key):
    response = diff(plugin("docker"), BASE, {**BASE, key: IN_PLACE[key]})
    assert response.changes == provider_pb2.DiffResponse.DIFF_SOME
    assert (list(response.diffs), list(response.replaces)) == ([key], [])


@pytest.mark.parametrize("key", sorted(PROVIDER_ONLY))
def test_provider_settings_update_in_place(plugin, key):
    response = diff(plugin("docker"), BASE, {**BASE, key: PROVIDER_ONLY[key]})
    assert (list(response.diffs), list(response.replaces)) == ([key], [])


@pytest.mark.parametrize("key", sorted(REPLACING))
def test_every_other_container_input_replaces(plugin, key):
    response = diff(plugin("docker"), BASE, {**BASE, key: REPLACING[key]})
    assert (list(response.diffs), list(response.replaces)) == ([key], [key])


def test_the_preview_names_exactly_the_replacing_inputs(plugin):
    response = diff(plugin("docker"), BASE, {**BASE, "memory": 512, "image": "medisys/app:2", "envs": ["A=1"], "wait": False})
    assert list(response.diffs) == ["envs", "image", "memory", "wait"]
    assert list(response.replaces) == ["envs", "image"]


def test_cpus_replaces_as_upstream_marks_it_force_new(plugin):
    assert list(diff(plugin("docker"), BASE, {**BASE, "cpus": "0.75"}).replaces) == ["cpus"]


def test_upstream_quirk_healthcheck_and_tmpfs_changes_do_not_replace(plugin):
    health = {**BASE["healthcheck"], "interval": "10s"}
    for key, value in (("healthcheck", health), ("tmpfs", {"/tmp": "size=1m"}), ("init", True), ("cpuPeriod", 100000)):
        assert list(diff(plugin("docker"), BASE, {**BASE, key: value}).replaces) == [], key


@pytest.mark.parametrize("token, old, key, value", [
    ("docker:index/network:Network", {"name": "n", "driver": "bridge", "internal": True,
                                      "ipamConfigs": [{"subnet": "10.0.0.0/24", "gateway": "10.0.0.1"}]}, "internal", False),
    ("docker:index/network:Network", {"name": "n", "ipamConfigs": [{"subnet": "10.0.0.0/24"}]}, "ipamConfigs", [{"subnet": "10.0.1.0/24"}]),
    ("docker:index/network:Network", {"name": "n", "labels": []}, "labels", [{"label": "a", "value": "b"}]),
    ("docker:index/volume:Volume", {"name": "v", "labels": []}, "labels", [{"label": "a", "value": "b"}]),
    ("docker:index/volume:Volume", {"name": "v"}, "driverOpts", {"type": "tmpfs"}),
    ("docker:index/remoteImage:RemoteImage", {"name": "medisys/app:1"}, "name", "medisys/app:2"),
    ("docker:index/remoteImage:RemoteImage", {"name": "medisys/app:1"}, "pullTriggers", ["sha256:1"]),
])
def test_network_volume_and_image_inputs_replace(plugin, token, old, key, value):
    response = plugin("docker").Diff(provider_pb2.DiffRequest(urn=urn(token), id="x", olds=struct(old), old_inputs=struct(old),
                                                              news=struct({**old, key: value})))
    assert list(response.replaces) == [key]


def test_remote_image_keep_locally_updates_in_place(plugin):
    old = {"name": "medisys/app:1", "keepLocally": False}
    response = plugin("docker").Diff(provider_pb2.DiffRequest(urn=urn("docker:index/remoteImage:RemoteImage"), id="x", olds=struct(old),
                                                              old_inputs=struct(old), news=struct({**old, "keepLocally": True})))
    assert (list(response.diffs), list(response.replaces)) == (["keepLocally"], [])


# --- docker: what an update runs, what create runs ---------------------------------------------------


def test_update_sends_every_in_place_setting_in_one_docker_update():
    news = {**BASE, "memory": 512, "memorySwap": 512, "memoryReservation": 128, "cpuShares": 512, "cpuSet": "0-1",
            "restart": "on-failure", "maxRetryCount": 3, "deviceWriteIops": [{"path": "/dev/sda", "rate": 100}]}
    args = container_update_args("abc", news)
    assert args[0] == "update" and args[-1] == "abc"
    pairs = dict(zip(args[1:-1:2], args[2:-1:2]))
    assert pairs == {"--restart": "on-failure:3", "--memory": "512m", "--memory-swap": "512m", "--memory-reservation": "128m",
                     "--cpu-shares": "512", "--cpuset-cpus": "0-1", "--device-write-iops": "/dev/sda:100"}


def test_update_runs_docker_update_only_for_limits_and_starts_a_stopped_must_run_container(monkeypatch):
    calls: list[tuple[str, ...]] = []
    monkeypatch.setattr(docker_provider, "docker", lambda *args, **kw: calls.append(args) or "")
    Container().update("abc", {**BASE, "mustRun": True}, {**BASE, "waitTimeout": 10}, {})
    assert calls == []
    Container().update("abc", BASE, {**BASE, "memory": 512, "memorySwap": 512}, {})
    assert calls == [tuple(container_update_args("abc", {**BASE, "memory": 512, "memorySwap": 512}))]
    calls.clear()
    Container().update("abc", {**BASE, "mustRun": False}, BASE, {})
    assert calls == [("start", "abc")]


def test_create_args_carry_the_in_place_inputs():
    args = container_create_args({**BASE, **{k: v for k, v in IN_PLACE.items() if k not in ("mustRun", "start")}})
    for flag, value in (("--memory", "512m"), ("--memory-swap", "1024m"), ("--memory-reservation", "128m"), ("--cpu-shares", "512"),
                        ("--cpuset-cpus", "0"), ("--restart", "always"), ("--device-read-bps", "/dev/sda:1048576")):
        assert args[args.index(flag) + 1] == value, flag


def test_check_adds_upstream_defaults_and_refuses_inputs_it_cannot_honour():
    checked, failures = Container().check({"name": "a", "image": "i", "ports": [{"internal": 80}], "links": ["x"]})
    assert checked["restart"] == "no" and checked["mustRun"] is True and checked["start"] is True
    assert checked["ports"] == [{"ip": "0.0.0.0", "protocol": "tcp", "internal": 80}]
    assert [p for p, _ in failures] == ["links"]


# --- docker: read ------------------------------------------------------------------------------------


def inspect_of(inputs: dict, **changes) -> dict:
    """`docker inspect` of the container the stand-in creates from these inputs, as Docker 27 reports it."""
    found = {
        "Id": "0123456789abcdef" * 4, "Name": "/" + inputs["name"], "Image": "sha256:" + "a" * 64,
        "State": {"Running": True, "ExitCode": 0},
        "Config": {"Hostname": inputs["hostname"], "Domainname": "", "User": "", "WorkingDir": "/srv", "Image": inputs["image"],
                   "Env": ["PATH=/usr/bin", *inputs["envs"], "LANG=C.UTF-8"], "Cmd": ["app"], "Entrypoint": None,
                   "Labels": {"org.opencontainers.image.version": "1", **{i["label"]: i["value"] for i in inputs["labels"]}},
                   "StopTimeout": 30, "Tty": False, "OpenStdin": False,
                   "Healthcheck": {"Test": ["CMD-SHELL", "curl -fsS http://127.0.0.1:8000/health"], "Interval": 5_000_000_000,
                                   "Timeout": 3_000_000_000, "StartPeriod": 10_000_000_000, "Retries": 5}},
        "HostConfig": {"Memory": 256 * 2**20, "MemorySwap": 256 * 2**20, "MemoryReservation": 0, "NanoCpus": 500_000_000,
                       "CpuShares": 0, "CpusetCpus": "", "RestartPolicy": {"Name": "unless-stopped", "MaximumRetryCount": 0},
                       "CapAdd": None, "CapDrop": ["ALL"], "SecurityOpt": ["no-new-privileges:true"],
                       "LogConfig": {"Type": "json-file", "Config": {"max-size": "10m"}}, "Tmpfs": None, "Init": None,
                       "BlkioDeviceReadBps": None, "AutoRemove": False, "ReadonlyRootfs": False, "Privileged": False},
        "NetworkSettings": {
            "Ports": {"8000/tcp": [{"HostIp": "127.0.0.1", "HostPort": "18000"}]},
            "Networks": {"medisys-dev-production": {"IPAMConfig": {"IPv4Address": "10.211.1.20"}, "IPAddress": "10.211.1.20",
                                                    "Aliases": ["app-1", "0123456789ab"]}}},
    }
    for path, value in changes.items():
        target = found
        *parents, leaf = path.split(".")
        for parent in parents:
            target = target[parent]
        target[leaf] = value
    return found


def read(found: dict, state: dict = BASE) -> dict:
    return overlay(state, container_live(found, state))


def test_read_of_an_unchanged_container_equals_the_inputs():
    """Image env vars, Docker's labels and its short-id alias are not drift: only what the program set is compared."""
    assert read(inspect_of(BASE)) == BASE


@pytest.mark.parametrize("path, value, key, seen", [
    ("HostConfig.Memory", 300 * 2**20, "memory", 300),
    ("HostConfig.MemorySwap", -1, "memorySwap", -1),
    ("HostConfig.NanoCpus", 1_000_000_000, "cpus", "1.0"),
    ("HostConfig.RestartPolicy", {"Name": "no", "MaximumRetryCount": 0}, "restart", "no"),
    ("Config.Image", "medisys/app:0", "image", "medisys/app:0"),
    ("Config.Env", ["PORT=9000", "DB_HOST=10.0.2.10"], "envs", ["PORT=9000", "DB_HOST=10.0.2.10"]),
    ("Config.Labels", {"medisys.role": "db"}, "labels", [{"label": "medisys.role", "value": "db"}]),
    ("NetworkSettings.Ports", {"8000/tcp": [{"HostIp": "127.0.0.1", "HostPort": "18001"}]}, "ports",
     [{"internal": 8000, "external": 18001, "ip": "127.0.0.1", "protocol": "tcp"}]),
    ("NetworkSettings.Networks", {}, "networksAdvanced", []),
])
def test_read_reports_a_hand_made_change(path, value, key, seen):
    live = read(inspect_of(BASE, **{path: value}))
    assert live[key] == seen
    assert {k for k in live if live[k] != BASE.get(k)} == {key}


def test_read_reports_an_address_change_and_an_extra_network():
    networks = {"medisys-dev-production": {"IPAMConfig": {"IPv4Address": "10.211.1.99"}, "Aliases": ["app-1"]},
                "bridge": {"IPAMConfig": None, "IPAddress": "172.17.0.5", "Aliases": None}}
    live = read(inspect_of(BASE, **{"NetworkSettings.Networks": networks}))
    assert live["networksAdvanced"] == [
        {"name": "medisys-dev-production", "ipv4Address": "10.211.1.99", "aliases": ["app-1"]},
        {"name": "bridge", "ipv4Address": "172.17.0.5"},
    ]


def test_a_stopped_must_run_container_reads_as_must_run_false(monkeypatch):
    monkeypatch.setattr(docker_provider, "_inspect",
                        lambda kind, name, engine=None: inspect_of(BASE, **{"State": {"Running": False, "ExitCode": 137}}))
    live = Container().read("abc", BASE, {})
    assert live["mustRun"] is False
    assert {k for k in live if live[k] != BASE.get(k)} == {"mustRun"}


def test_a_removed_container_reads_as_gone(monkeypatch):
    monkeypatch.setattr(docker_provider, "_inspect", lambda kind, name, engine=None: None)
    assert Container().read("abc", BASE, {}) is None


def test_read_splits_a_multi_word_entrypoint_back():
    state = {**BASE, "entrypoints": ["/bin/sh", "/usr/local/bin/form"], "command": ["--yes"]}
    found = inspect_of(state, **{"Config.Entrypoint": ["/bin/sh"], "Config.Cmd": ["/usr/local/bin/form", "--yes"]})
    live = read(found, state)
    assert (live["entrypoints"], live["command"]) == (["/bin/sh", "/usr/local/bin/form"], ["--yes"])


def test_durations_and_cpus_are_written_as_upstream_reads_them():
    assert [go_duration(s * 10**9) for s in (0, 5, 90, 3600)] == ["0s", "5s", "1m30s", "1h0m0s"]
    assert go_duration(1_500_000_000) == "1.5s" and go_duration(500_000_000) == "500ms"
    assert [nano_cpus(n) for n in (500_000_000, 250_000_000, 1_000_000_000, 1_500_000_000, 2_000_000_000)] == \
        ["0.5", "0.25", "1.0", "1.5", "2.0"]


def test_read_passes_the_live_values_into_the_refreshed_inputs(plugin):
    """Read over gRPC: a removed container comes back with no id (the engine then drops it)."""
    response = plugin("docker").Read(provider_pb2.ReadRequest(
        id="medisys-standin-unit-no-such-container", urn=urn(CONTAINER), properties=struct(BASE), inputs=struct(BASE)))
    assert response.id == ""


def test_remote_image_outputs_and_id(monkeypatch):
    image = {"Id": "sha256:" + "b" * 64, "RepoDigests": ["medisys/app@sha256:" + "c" * 64]}
    monkeypatch.setattr(RemoteImage, "_find", staticmethod(lambda name, engine=None: image))
    resource_id, outputs = RemoteImage().create({"name": "medisys/app:1", "keepLocally": True}, {})
    assert resource_id == image["Id"] + "medisys/app:1"
    assert outputs["imageId"] == image["Id"] and outputs["repoDigest"] == image["RepoDigests"][0]
    image["RepoDigests"] = []
    assert RemoteImage().read(resource_id, outputs, {})["repoDigest"] == ""


# --- random and tls ----------------------------------------------------------------------------------


def create(stub, token: str, inputs: dict) -> tuple[str, dict]:
    checked = stub.Check(provider_pb2.CheckRequest(urn=urn(token), news=struct(inputs)))
    assert list(checked.failures) == []
    preview = to_dict(stub.Create(provider_pb2.CreateRequest(urn=urn(token), properties=checked.inputs, preview=True)).properties)
    response = stub.Create(provider_pb2.CreateRequest(urn=urn(token), properties=checked.inputs))
    return response.id, {"_preview": preview, **to_dict(response.properties)}


def test_random_string_has_the_minimums_and_is_its_own_id(plugin):
    rid, out = create(plugin("random"), "random:index/randomString:RandomString",
                      {"length": 12, "special": False, "minUpper": 3, "minNumeric": 4})
    assert out["_preview"]["result"] == UNKNOWN
    result = out["result"]
    assert rid == result and len(result) == 12 and result.isalnum()
    assert sum(c.isupper() for c in result) >= 3 and sum(c.isdigit() for c in result) >= 4
    assert out["lower"] is True and out["minLower"] == 0  # upstream's defaults land in the state


def test_random_integer_is_within_bounds_and_repeats_for_a_seed(plugin):
    stub = plugin("random")
    results = {create(stub, "random:index/randomInteger:RandomInteger", {"min": 10, "max": 12})[1]["result"] for _ in range(20)}
    assert results <= {10, 11, 12} and len(results) > 1
    seeded = [create(stub, "random:index/randomInteger:RandomInteger", {"min": 1, "max": 10**6, "seed": "s"}) for _ in range(2)]
    assert seeded[0][1]["result"] == seeded[1][1]["result"] and seeded[0][0] == str(seeded[0][1]["result"])
    failures = stub.Check(provider_pb2.CheckRequest(urn=urn("random:index/randomInteger:RandomInteger"), news=struct({"min": 5, "max": 1})))
    assert [f.property for f in failures.failures] == ["max"]


def test_random_id_encodings_agree(plugin):
    rid, out = create(plugin("random"), "random:index/randomId:RandomId", {"byteLength": 8, "prefix": "p-"})
    raw = base64.urlsafe_b64decode(rid + "=" * (-len(rid) % 4))
    assert len(raw) == 8
    assert out["b64Url"] == "p-" + rid and out["hex"] == "p-" + raw.hex()
    assert out["b64Std"] == "p-" + base64.b64encode(raw).decode() and out["dec"] == "p-" + str(int.from_bytes(raw, "big"))
    assert all(out["_preview"][k] == UNKNOWN for k in ("b64Std", "b64Url", "dec", "hex"))


def test_random_uuid_is_a_uuid(plugin):
    rid, out = create(plugin("random"), "random:index/randomUuid:RandomUuid", {"keepers": {"a": "1"}})
    assert str(uuid.UUID(out["result"])) == out["result"] == rid and out["keepers"] == {"a": "1"}


def test_random_shuffle_permutes_and_repeats(plugin):
    stub = plugin("random")
    items = [str(i) for i in range(8)]
    _, out = create(stub, "random:index/randomShuffle:RandomShuffle", {"inputs": items})
    assert sorted(out["results"]) == items
    _, out = create(stub, "random:index/randomShuffle:RandomShuffle", {"inputs": items, "resultCount": 12})
    assert len(out["results"]) == 12 and sorted(out["results"][:8]) == items
    _, out = create(stub, "random:index/randomShuffle:RandomShuffle", {"inputs": items, "resultCount": 3})
    assert len(set(out["results"])) == 3


def test_random_pet_is_its_id_with_prefix_length_and_separator(plugin):
    rid, out = create(plugin("random"), "random:index/randomPet:RandomPet", {"length": 3, "prefix": "mx", "separator": "_"})
    words = rid.split("_")
    assert words[0] == "mx" and len(words) == 4 and out["length"] == 3
    rid, out = create(plugin("random"), "random:index/randomPet:RandomPet", {})
    assert len(rid.split("-")) == 2 and out["separator"] == "-"


def test_random_inputs_all_replace(plugin):
    old = {"min": 1, "max": 5, "keepers": {"a": "1"}}
    response = plugin("random").Diff(provider_pb2.DiffRequest(urn=urn("random:index/randomInteger:RandomInteger"), id="3",
                                                              olds=struct(old), old_inputs=struct(old),
                                                              news=struct({**old, "keepers": {"a": "2"}})))
    assert list(response.replaces) == ["keepers"]


def _ssh_wire(openssh: str) -> bytes:
    return base64.b64decode(openssh.split()[1])


@pytest.mark.parametrize("inputs, key_type, pem_header", [
    ({"algorithm": "RSA", "rsaBits": 2048}, rsa.RSAPrivateKey, "RSA PRIVATE KEY"),
    ({"algorithm": "ECDSA", "ecdsaCurve": "P384"}, ec.EllipticCurvePrivateKey, "EC PRIVATE KEY"),
    ({"algorithm": "ED25519"}, ed25519.Ed25519PrivateKey, "PRIVATE KEY"),
])
def test_private_key_outputs_match_upstreams(plugin, inputs, key_type, pem_header):
    rid, out = create(plugin("tls"), "tls:index/privateKey:PrivateKey", inputs)
    assert out["privateKeyPem"].startswith(f"-----BEGIN {pem_header}-----")
    assert out["privateKeyPemPkcs8"].startswith("-----BEGIN PRIVATE KEY-----")
    assert out["privateKeyOpenssh"].startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    key = serialization.load_pem_private_key(out["privateKeyPem"].encode(), None)
    assert isinstance(key, key_type)
    public = serialization.load_pem_public_key(out["publicKeyPem"].encode())
    assert public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) == \
        key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    wire = _ssh_wire(out["publicKeyOpenssh"])
    assert out["publicKeyOpenssh"].endswith("\n")
    assert out["publicKeyFingerprintSha256"] == "SHA256:" + base64.b64encode(hashlib.sha256(wire).digest()).decode().rstrip("=")
    assert out["publicKeyFingerprintMd5"].replace(":", "") == hashlib.md5(wire).hexdigest()
    assert rid == hashlib.sha1(public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).hexdigest()
    assert out["_preview"]["privateKeyPem"] == UNKNOWN


def test_ecdsa_defaults_to_p224_which_has_no_openssh_forms(plugin):
    _, out = create(plugin("tls"), "tls:index/privateKey:PrivateKey", {"algorithm": "ECDSA"})
    assert out["ecdsaCurve"] == "P224" and out["rsaBits"] == 2048
    assert serialization.load_pem_private_key(out["privateKeyPem"].encode(), None).curve.name == "secp224r1"
    assert out["privateKeyOpenssh"] == out["publicKeyOpenssh"] == out["publicKeyFingerprintMd5"] == ""


def test_the_sdks_mark_the_private_forms_and_password_secret():
    """Secrecy comes from the SDKs' additional_secret_outputs (the stand-in takes no secrets)."""
    import inspect

    import pulumi_random
    import pulumi_tls

    assert '"privateKeyOpenssh", "privateKeyPem", "privateKeyPemPkcs8"' in inspect.getsource(pulumi_tls.PrivateKey._internal_init)
    assert '"bcryptHash", "result"' in inspect.getsource(pulumi_random.RandomPassword._internal_init)
    assert "additional_secret_outputs" not in inspect.getsource(pulumi_random.RandomString._internal_init)


def test_an_ed25519_ca_signs_a_chain(plugin):
    from cryptography import x509

    stub = plugin("tls")
    _, ca_key = create(stub, "tls:index/privateKey:PrivateKey", {"algorithm": "ED25519"})
    _, ca = create(stub, "tls:index/selfSignedCert:SelfSignedCert", {"privateKeyPem": ca_key["privateKeyPem"], "isCaCertificate": True,
                                                                     "validityPeriodHours": 1, "subject": {"commonName": "ca"},
                                                                     "allowedUses": ["cert_signing"]})
    _, key = create(stub, "tls:index/privateKey:PrivateKey", {"algorithm": "RSA"})
    _, csr = create(stub, "tls:index/certRequest:CertRequest", {"privateKeyPem": key["privateKeyPem"], "subject": {"commonName": "db"}})
    _, leaf = create(stub, "tls:index/locallySignedCert:LocallySignedCert", {
        "certRequestPem": csr["certRequestPem"], "caCertPem": ca["certPem"], "caPrivateKeyPem": ca_key["privateKeyPem"],
        "validityPeriodHours": 1, "allowedUses": ["server_auth"]})
    x509.load_pem_x509_certificate(leaf["certPem"].encode()).verify_directly_issued_by(x509.load_pem_x509_certificate(ca["certPem"].encode()))


def test_a_whole_cpu_written_as_1_reads_back_as_1_0_and_replaces_like_upstream():
    """Upstream writes NanoCpus back as "1.0" (nanoInt64ToDecimalString) and `cpus` is ForceNew: a
    program sending "1" sees its container replaced after every refresh. The stand-in does the same."""
    state = {**BASE, "cpus": "1"}
    live = read(inspect_of(state, **{"HostConfig.NanoCpus": 1_000_000_000}), state)
    assert live["cpus"] == "1.0" != state["cpus"]
    assert "cpus" not in Container.updatable
