"""Container hardening (CIS Docker Benchmark 1.6 section 5, plus 4.1 and 4.6)."""

from __future__ import annotations

import posixpath
import re
from typing import Final

from pulumi_policy import Severity

from .access import as_bool, as_str, elements, get
from .framework import Reporter, resource_policy, schema
from .settings import Settings
from .shapes import CONTAINER, ONE_SHOT_ROLES, Resource

_EXEMPT_ROLES: Final = {
    "type": "array",
    "items": {"type": "string"},
    "default": [],
    "description": "Roles this policy does not apply to (document why in the config).",
}


def _exempt(res: Resource, settings: Settings) -> bool:
    return res.role in settings.texts("exemptRoles")


@resource_policy(
    "hardening-no-privileged",
    description="Containers never run privileged.",
    types=[CONTAINER],
    severity=Severity.CRITICAL,
    config=schema(exemptRoles=_EXEMPT_ROLES),
    remediation="Remove privileged=True; add only the specific capability the process needs.",
)
def no_privileged(res: Resource, settings: Settings, reporter: Reporter) -> None:
    if as_bool(res.get("privileged")) and not _exempt(res, settings):
        reporter.violation(
            "runs privileged (all capabilities, all host devices)",
            "remove privileged=True and add only the needed capability to capabilities.adds",
        )


_NAMESPACE_FIELDS: Final = ("networkMode", "pidMode", "ipcMode", "usernsMode", "cgroupnsMode")


@resource_policy(
    "hardening-no-host-namespaces",
    description="Containers do not share the host's network, PID, IPC, user or cgroup namespace.",
    types=[CONTAINER],
    severity=Severity.CRITICAL,
    config=schema(exemptRoles=_EXEMPT_ROLES),
    remediation="Remove networkMode/pidMode/ipcMode/usernsMode/cgroupnsMode = 'host'.",
)
def no_host_namespaces(res: Resource, settings: Settings, reporter: Reporter) -> None:
    if _exempt(res, settings):
        return
    for field in _NAMESPACE_FIELDS:
        value = as_str(res.get(field))
        if value is not None and value.strip().lower() == "host":
            reporter.violation(
                f"shares the host's namespace ({field} = host)",
                f"remove {field}; use networksAdvanced for networking",
            )


_FORBIDDEN_HOST_PATHS: Final = [
    "/var/run/docker.sock",
    "/run/docker.sock",
    "/run/containerd",
    "/var/run/containerd",
    "/var/lib/docker",
    "/",
    "/etc",
    "/proc",
    "/sys",
    "/boot",
    "/dev",
    "/root",
    "/usr",
    "/lib",
    "/bin",
    "/sbin",
]


def _host_paths(res: Resource) -> list[tuple[str, str]]:
    """(where, host path) of every bind volume, bind mount and device."""
    found: list[tuple[str, str]] = []
    for index, volume in elements(res.get("volumes")):
        path = as_str(get(volume, "hostPath"))
        if path:
            found.append((f"volumes[{index}].hostPath", path))
    for index, mount in elements(res.get("mounts")):
        if (as_str(get(mount, "type")) or "").lower() == "bind":
            path = as_str(get(mount, "source"))
            if path:
                found.append((f"mounts[{index}].source", path))
    for index, device in elements(res.get("devices")):
        path = as_str(get(device, "hostPath"))
        if path:
            found.append((f"devices[{index}].hostPath", path))
    return found


def _is_under(path: str, root: str) -> bool:
    path, root = posixpath.normpath(path), posixpath.normpath(root)
    return path == root or (root != "/" and path.startswith(root + "/"))


@resource_policy(
    "hardening-no-docker-socket",
    description="Containers do not mount the Docker socket or sensitive host directories.",
    types=[CONTAINER],
    severity=Severity.CRITICAL,
    config=schema(
        forbiddenHostPaths={
            "type": "array",
            "items": {"type": "string"},
            "default": _FORBIDDEN_HOST_PATHS,
            "description": "Host paths that may not be bound (a directory forbids what is "
            "under it; '/' only forbids the root itself).",
        }
    ),
    remediation="Use named Docker volumes instead of host paths; never mount docker.sock.",
)
def no_docker_socket(res: Resource, settings: Settings, reporter: Reporter) -> None:
    forbidden = settings.texts("forbiddenHostPaths")
    for where, path in _host_paths(res):
        hit = next((root for root in forbidden if _is_under(path, root)), None)
        if hit is not None:
            reporter.violation(
                f"{where} mounts host path {path} (under forbidden {hit})",
                "use a named docker.Volume; the Docker socket gives root on the host",
            )


_DIGEST: Final = re.compile(r"@sha256:[0-9a-f]{64}$")
_IMAGE_ID: Final = re.compile(r"^sha256:[0-9a-f]{64}$")


@resource_policy(
    "hardening-image-pinned",
    description="Container images are pinned: an explicit tag other than latest, or a digest.",
    types=[CONTAINER],
    severity=Severity.HIGH,
    config=schema(
        requireDigest={
            "type": "boolean",
            "default": False,
            "description": "Require image@sha256:<digest> (or an image ID) instead of a tag.",
        }
    ),
    remediation="Reference images as name:<version> (e.g. medisys/haproxy:2026.11.1) or by digest.",
)
def image_pinned(res: Resource, settings: Settings, reporter: Reporter) -> None:
    image = (as_str(res.get("image")) or "").strip()
    if _DIGEST.search(image) or _IMAGE_ID.match(image):
        return
    if settings.flag("requireDigest"):
        reporter.violation(
            f"image {image or '(none)'} is not pinned by digest",
            "reference the image as name@sha256:<digest>",
        )
        return
    last = image.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else ""
    if not tag or tag == "latest":
        reporter.violation(
            f"image {image or '(none)'} has no fixed tag (it floats with 'latest')",
            "use an explicit version tag such as :2026.11.1, or a digest",
        )


@resource_policy(
    "hardening-healthcheck-and-restart",
    description="Long-running containers have a health check and a restart policy.",
    types=[CONTAINER],
    severity=Severity.MEDIUM,
    config=schema(
        allowedRestartPolicies={
            "type": "array",
            "items": {"type": "string"},
            "default": ["unless-stopped", "on-failure"],
        },
        oneShotRoles={
            "type": "array",
            "items": {"type": "string"},
            "default": sorted(ONE_SHOT_ROLES),
            "description": "Roles that run once and exit (also any medisys.one-shot=true).",
        },
    ),
    remediation="Set healthcheck.tests (e.g. ['CMD', 'pg_isready']) and restart='unless-stopped'.",
)
def healthcheck_and_restart(res: Resource, settings: Settings, reporter: Reporter) -> None:
    if res.is_one_shot(set(settings.texts("oneShotRoles"))):
        return
    tests = res.string_list("healthcheck", "tests")
    if not tests or tests[0].strip().upper() == "NONE":
        reporter.violation(
            "has no health check, so Docker cannot tell a hung service from a healthy one",
            "set healthcheck.tests, e.g. ['CMD-SHELL', '<probe command>']",
        )
    restart = as_str(res.get("restart")) or "no"
    allowed = settings.texts("allowedRestartPolicies")
    if restart not in allowed:
        known = restart in ("no", "always", "unless-stopped", "on-failure")
        reporter.violation(
            f"restart policy is '{restart if known else 'unrecognised'}', so it may stay "
            "down after a crash",
            f"set restart to one of: {', '.join(allowed)}",
        )


@resource_policy(
    "hardening-non-root",
    description="Containers run as a non-root user.",
    types=[CONTAINER],
    severity=Severity.HIGH,
    config=schema(exemptRoles=_EXEMPT_ROLES),
    remediation="Set `user` to the service account of the image (a name or a UID other than 0).",
)
def non_root(res: Resource, settings: Settings, reporter: Reporter) -> None:
    if _exempt(res, settings):
        return
    user = (as_str(res.get("user")) or "").strip()
    uid = user.split(":", 1)[0]
    if not user:
        reporter.violation(
            "sets no user, so it runs as the image's default user (often root)",
            "set `user` to a non-root name or UID",
        )
    elif uid in ("root", "0"):
        reporter.violation(f"runs as {uid}", "set `user` to a non-root name or UID")


_NO_NEW_PRIVILEGES: Final = frozenset(
    {"no-new-privileges", "no-new-privileges:true", "no-new-privileges=true"}
)


@resource_policy(
    "hardening-no-new-privileges",
    description="Containers set no-new-privileges, so setuid binaries cannot gain privileges.",
    types=[CONTAINER],
    severity=Severity.HIGH,
    config=schema(exemptRoles=_EXEMPT_ROLES),
    remediation="Add 'no-new-privileges:true' to securityOpts.",
)
def no_new_privileges(res: Resource, settings: Settings, reporter: Reporter) -> None:
    if _exempt(res, settings):
        return
    options = {o.replace(" ", "").lower() for o in res.string_list("securityOpts")}
    if not options & _NO_NEW_PRIVILEGES:
        reporter.violation(
            "does not set no-new-privileges", "add 'no-new-privileges:true' to securityOpts"
        )


_FORBIDDEN_CAPS: Final = [
    "ALL",
    "SYS_ADMIN",
    "NET_ADMIN",
    "SYS_PTRACE",
    "SYS_MODULE",
    "DAC_READ_SEARCH",
    "NET_RAW",
    "SYS_RAWIO",
    "SYS_TIME",
    "MKNOD",
]


def _cap(name: str) -> str:
    name = name.strip().upper()
    return name.removeprefix("CAP_")


@resource_policy(
    "hardening-capabilities-dropped",
    description="Containers drop all Linux capabilities and add back none of the dangerous ones.",
    types=[CONTAINER],
    severity=Severity.HIGH,
    config=schema(
        forbiddenAdds={
            "type": "array",
            "items": {"type": "string"},
            "default": _FORBIDDEN_CAPS,
        }
    ),
    remediation="Set capabilities={drops: ['ALL'], adds: [<only what the service needs, e.g. "
    "NET_BIND_SERVICE>]}.",
)
def capabilities_dropped(res: Resource, settings: Settings, reporter: Reporter) -> None:
    drops = {_cap(c) for c in res.string_list("capabilities", "drops")}
    if "ALL" not in drops:
        reporter.violation("does not drop all capabilities", "set capabilities.drops = ['ALL']")
    adds = {_cap(c) for c in res.string_list("capabilities", "adds")}
    bad = sorted(adds & {_cap(c) for c in settings.texts("forbiddenAdds")})
    if bad:
        reporter.violation(
            f"adds dangerous capabilities: {', '.join(bad)}",
            "remove them from capabilities.adds",
        )


_UNCONFINED: Final = [
    "seccomp=unconfined",
    "seccomp:unconfined",
    "apparmor=unconfined",
    "apparmor:unconfined",
    "label=disable",
    "label:disable",
]


@resource_policy(
    "hardening-security-profiles-enabled",
    description="Containers keep the default seccomp, AppArmor and SELinux confinement.",
    types=[CONTAINER],
    severity=Severity.HIGH,
    config=schema(
        forbiddenSecurityOpts={
            "type": "array",
            "items": {"type": "string"},
            "default": _UNCONFINED,
        }
    ),
    remediation="Remove seccomp=unconfined / apparmor=unconfined / label=disable from "
    "securityOpts.",
)
def security_profiles_enabled(res: Resource, settings: Settings, reporter: Reporter) -> None:
    forbidden = {o.lower() for o in settings.texts("forbiddenSecurityOpts")}
    for option in res.string_list("securityOpts"):
        if option.replace(" ", "").lower() in forbidden:
            reporter.violation(
                f"securityOpts disables confinement ({option})",
                "remove that entry from securityOpts",
            )


POLICIES = [
    no_privileged,
    no_host_namespaces,
    no_docker_socket,
    image_pinned,
    healthcheck_and_restart,
    non_root,
    no_new_privileges,
    capabilities_dropped,
    security_profiles_enabled,
]
