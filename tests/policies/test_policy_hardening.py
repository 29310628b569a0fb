"""Container hardening policies."""

from __future__ import annotations

import policy_testkit as kit
import pytest
from policy_testkit import assert_violation, container, run_resource

PRIVILEGED = kit.policy_named("hardening-no-privileged")
NAMESPACES = kit.policy_named("hardening-no-host-namespaces")
SOCKET = kit.policy_named("hardening-no-docker-socket")
PINNED = kit.policy_named("hardening-image-pinned")
HEALTH = kit.policy_named("hardening-healthcheck-and-restart")
NON_ROOT = kit.policy_named("hardening-non-root")
NNP = kit.policy_named("hardening-no-new-privileges")
CAPS = kit.policy_named("hardening-capabilities-dropped")
PROFILES = kit.policy_named("hardening-security-profiles-enabled")

ALL = [PRIVILEGED, NAMESPACES, SOCKET, PINNED, HEALTH, NON_ROOT, NNP, CAPS, PROFILES]


@pytest.mark.parametrize("policy", ALL, ids=lambda p: p.name)
@pytest.mark.parametrize("role", sorted(kit.ROLE_SEGMENTS))
def test_hardened_baseline_passes(policy: object, role: str) -> None:
    assert run_resource(policy, container(role), name=role) == []  # type: ignore[arg-type]


def test_privileged_fails_unless_role_exempt() -> None:
    props = container("prometheus", privileged=True)
    message = assert_violation(
        run_resource(PRIVILEGED, props, name="prom"), "prom", "runs privileged"
    )
    assert "remove privileged=True" in message
    assert (
        run_resource(PRIVILEGED, props, name="prom", config={"exemptRoles": ["prometheus"]}) == []
    )


@pytest.mark.parametrize(
    "field", ["networkMode", "pidMode", "ipcMode", "usernsMode", "cgroupnsMode"]
)
def test_host_namespace_fails(field: str) -> None:
    found = run_resource(NAMESPACES, container("app", **{field: "host"}), name="app-1")
    assert_violation(found, "app-1", f"{field} = host")


def test_container_network_mode_is_allowed() -> None:
    props = container("app", networkMode="container:sidecar")
    assert run_resource(NAMESPACES, props, name="app-1") == []


@pytest.mark.parametrize(
    "volumes,mounts,expected",
    [
        (
            [{"hostPath": "/var/run/docker.sock", "containerPath": "/var/run/docker.sock"}],
            [],
            "/var/run/docker.sock",
        ),
        (
            [],
            [{"type": "bind", "source": "/run/docker.sock", "target": "/d.sock"}],
            "/run/docker.sock",
        ),
        ([{"hostPath": "/etc/", "containerPath": "/host-etc"}], [], "under forbidden /etc"),
        ([{"hostPath": "/", "containerPath": "/host"}], [], "host path /"),
    ],
)
def test_sensitive_host_mounts_fail(volumes: list, mounts: list, expected: str) -> None:
    props = container("prometheus", volumes=volumes, mounts=mounts)
    message = assert_violation(run_resource(SOCKET, props, name="prom"), "prom", expected)
    assert "named docker.Volume" in message


def test_named_volumes_and_other_host_paths_pass() -> None:
    props = container(
        "postgres",
        volumes=[
            {"volumeName": "pgdata", "containerPath": "/var/lib/postgresql/data"},
            {"hostPath": "/srv/medisys/backups", "containerPath": "/backups"},
        ],
        mounts=[{"type": "volume", "source": "x", "target": "/x"}],
    )
    assert run_resource(SOCKET, props, name="pg") == []


def test_device_under_dev_fails() -> None:
    props = container("app", devices=[{"hostPath": "/dev/mem", "containerPath": "/dev/mem"}])
    assert_violation(run_resource(SOCKET, props, name="app-1"), "app-1", "devices[0].hostPath")


@pytest.mark.parametrize(
    "image", ["medisys/haproxy", "medisys/haproxy:latest", "registry:5000/medisys/app"]
)
def test_floating_images_fail(image: str) -> None:
    found = run_resource(PINNED, container("app", image=image), name="app-1")
    assert_violation(found, "app-1", "no fixed tag")


@pytest.mark.parametrize(
    "image",
    [
        "registry:5000/medisys/app:2026.11.1",
        "medisys/app@sha256:" + "a" * 64,
        "sha256:" + "b" * 64,
    ],
)
def test_pinned_images_pass(image: str) -> None:
    assert run_resource(PINNED, container("app", image=image), name="app-1") == []


def test_digest_can_be_required() -> None:
    found = run_resource(PINNED, container("app"), name="app-1", config={"requireDigest": True})
    assert_violation(found, "app-1", "not pinned by digest")


def test_missing_healthcheck_and_restart_fail() -> None:
    props = container("app", restart="no")
    del props["healthcheck"]
    found = run_resource(HEALTH, props, name="app-1")
    assert_violation(found, "app-1", "no health check")
    assert_violation(found, "app-1", "restart policy is 'no'")


def test_healthcheck_none_fails() -> None:
    props = container("app", healthcheck={"tests": ["NONE"]})
    assert_violation(run_resource(HEALTH, props, name="app-1"), "app-1", "no health check")


def test_one_shot_containers_are_exempt() -> None:
    props = container(
        "app",
        restart="no",
        labels=container("app")["labels"] + [{"label": "medisys.one-shot", "value": "true"}],
    )
    del props["healthcheck"]
    assert run_resource(HEALTH, props, name="migrate") == []


@pytest.mark.parametrize("user", ["", "root", "0", "0:0", "root:root"])
def test_root_user_fails(user: str) -> None:
    found = run_resource(NON_ROOT, container("app", user=user), name="app-1")
    assert_violation(found, "app-1", "set `user` to a non-root")


def test_non_root_exemption_by_role() -> None:
    props = container("postgres", user="root")
    config = {"exemptRoles": ["postgres"]}
    assert run_resource(NON_ROOT, props, name="pg", config=config) == []


def test_no_new_privileges_missing_fails() -> None:
    found = run_resource(NNP, container("app", securityOpts=[]), name="app-1")
    assert_violation(found, "app-1", "no-new-privileges")


@pytest.mark.parametrize(
    "option", ["no-new-privileges", "no-new-privileges=true", "no-new-privileges: true"]
)
def test_no_new_privileges_spellings_pass(option: str) -> None:
    assert run_resource(NNP, container("app", securityOpts=[option]), name="app-1") == []


def test_capabilities_not_dropped_fails() -> None:
    found = run_resource(CAPS, container("app", capabilities={"adds": []}), name="app-1")
    assert_violation(found, "app-1", "does not drop all capabilities")


def test_dangerous_capability_added_fails() -> None:
    caps = {"drops": ["ALL"], "adds": ["NET_BIND_SERVICE", "CAP_SYS_ADMIN"]}
    found = run_resource(CAPS, container("load-balancer", capabilities=caps), name="lb")
    message = assert_violation(found, "lb", "SYS_ADMIN")
    assert "NET_BIND_SERVICE" not in message


def test_unconfined_seccomp_fails() -> None:
    props = container("app", securityOpts=["no-new-privileges:true", "seccomp=unconfined"])
    assert_violation(run_resource(PROFILES, props, name="app-1"), "app-1", "seccomp=unconfined")
