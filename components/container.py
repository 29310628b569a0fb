"""The one shape every service container shares: hardened, limited, labelled, health-checked.

Tiers describe what differs (image, command, networks, files); this module adds what must be
the same everywhere, so the policy pack and the tiers agree on one set of conventions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_docker as docker

from components.hosts import host_label
from components.templates import TEMPLATE_DIR
from config import Resources

JOB_RESOURCES = Resources(memory_mb=64, cpus=0.25)


@dataclass(frozen=True)
class Attachment:
    """A container's place on one network: a fixed address (None: the engine picks one) and its DNS aliases."""

    network: docker.Network
    address: str | None
    aliases: Sequence[str] = ()


@dataclass(frozen=True)
class ConfigFile:
    """A file uploaded into the container before it starts. Secret content stays a secret Output."""

    path: str
    content: pulumi.Input[str]
    executable: bool = False
    secret: bool = False  # passwords and keys: kept secret even if the source did not say so


@dataclass(frozen=True)
class ServiceSpec:
    role: str
    image: str
    resources: Resources
    attachments: Sequence[Attachment]
    healthcheck: Sequence[str] | None  # None only for one-shot jobs
    command: Sequence[str] | None = None
    entrypoint: Sequence[str] | None = None
    envs: Sequence[str] = ()
    files: Sequence[ConfigFile] = ()
    volumes: Sequence[docker.ContainerVolumeArgs] = ()
    ports: Sequence[docker.ContainerPortArgs] = ()
    user: str | None = None
    # `pulumi up` waits this long for the health check to pass, so dependents start against a ready service.
    wait_timeout_seconds: int = 180
    one_shot: bool = False
    stop_timeout_seconds: int = 30
    # A read-only root filesystem takes no uploads (Docker refuses them): its files come from a
    # volume a job fills. `tmpfs` gives it the scratch space it writes (path -> mount options).
    read_only: bool = False
    tmpfs: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)


def after_success(job: docker.Container, what: str) -> pulumi.Output[docker.Container]:
    """`job` itself once it exited 0, for `depends_on` of whatever must wait for it.

    pulumi-docker records a one-shot job's exit code without failing the resource, so the
    program decides: a non-zero exit raises here, and a resource that depends on this output is
    never registered (its old version stays). Only `depends_on` uses it, never an input: an
    input would make the next server a dependent of the job and be replaced at the same time.
    """

    def check(result: list) -> docker.Container:
        code, logs = result
        if code not in (0, None):
            tail = "\n".join(str(logs or "").strip().splitlines()[-15:])
            raise RuntimeError(f"{what} failed (exit code {code}); `docker logs` of that container shows why" + (f":\n{tail}" if tail else ""))
        return job

    return pulumi.Output.all(job.exit_code, job.container_logs).apply(check)


def labels(role: str, component: str, stack: str, extra: dict[str, str] | None = None) -> list[docker.ContainerLabelArgs]:
    values = {"medisys.role": role, "medisys.component": component, "medisys.stack": stack, **(extra or {})}
    return [docker.ContainerLabelArgs(label=k, value=v) for k, v in sorted(values.items())]


def service_container(name: str, container_name: str, component: str, spec: ServiceSpec, opts: pulumi.ResourceOptions) -> docker.Container:
    stack = pulumi.get_stack()
    healthcheck = None
    if spec.healthcheck is not None:
        healthcheck = docker.ContainerHealthcheckArgs(
            tests=["CMD", *spec.healthcheck], interval="5s", timeout="3s", retries=5, start_period="10s"
        )
    extra_labels = {**spec.labels, **host_label(opts), **({"medisys.one-shot": "true"} if spec.one_shot else {})}
    return docker.Container(
        name,
        name=container_name,
        image=spec.image,
        command=list(spec.command) if spec.command else None,
        entrypoints=list(spec.entrypoint) if spec.entrypoint else None,
        envs=list(spec.envs) or None,
        user=spec.user,
        hostname=container_name,
        labels=labels(spec.role, component, stack, extra_labels),
        memory=spec.resources.memory_mb,
        # Equal to memory: no swap, so a memory leak is an OOM kill, not a slow host.
        memory_swap=spec.resources.memory_mb,
        # As the engine reads it back ("1.0", not "1"): `cpus` forces a replacement when it differs.
        cpus=str(float(spec.resources.cpus)),
        networks_advanced=[
            docker.ContainerNetworksAdvancedArgs(name=a.network.name, ipv4_address=a.address or None, aliases=list(a.aliases) or None)
            for a in spec.attachments
        ],
        uploads=[
            docker.ContainerUploadArgs(
                file=f.path, content=pulumi.Output.secret(f.content) if f.secret else f.content, executable=f.executable or None
            )
            for f in spec.files
        ]
        or None,
        volumes=list(spec.volumes) or None,
        ports=list(spec.ports) or None,
        read_only=spec.read_only or None,
        tmpfs=dict(spec.tmpfs) or None,
        healthcheck=healthcheck,
        restart="no" if spec.one_shot else "unless-stopped",
        must_run=not spec.one_shot,
        # A one-shot job must have finished successfully before `up` carries on.
        attach=True if spec.one_shot else None,
        logs=True if spec.one_shot else None,
        rm=False,
        wait=not spec.one_shot,
        wait_timeout=spec.wait_timeout_seconds,
        # Every service runs as a non-root user and needs no capability (Docker lets it bind <1024).
        capabilities=docker.ContainerCapabilitiesArgs(drops=["ALL"]),
        security_opts=["no-new-privileges:true"],
        log_driver="json-file",
        log_opts={"max-size": "10m", "max-file": "3"},
        stop_timeout=spec.stop_timeout_seconds,
        # Removal stops the container first, so a server being scaled away drains its requests.
        destroy_grace_seconds=spec.stop_timeout_seconds,
        # A fixed name and address cannot exist twice: a replacement must remove the old one first.
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(delete_before_replace=True)),
    )


@dataclass(frozen=True)
class ConfigRelease:
    """Config a running service reloads instead of being recreated (templates/config-release.sh).

    `files` are uploaded to the job at their own paths (where the policy pack reads them) and
    installed under `release_dir/current/<name>`; the service reads them there.
    """

    image: str
    volume: docker.Volume
    release_dir: str
    files: Sequence[tuple[ConfigFile, str]]  # (staged upload, name inside the release)
    check_command: str
    reload_command: str
    attachment: Attachment
    user: str

    @property
    def mount(self) -> docker.ContainerVolumeArgs:
        return docker.ContainerVolumeArgs(volume_name=self.volume.name, container_path=self.release_dir)

    def current(self, name: str) -> str:
        return f"{self.release_dir}/current/{name}"


def config_release_job(name: str, role: str, component: str, release: ConfigRelease, opts: pulumi.ResourceOptions) -> docker.Container:
    """The one-shot job that installs and reloads a ConfigRelease; a changed file replaces the
    job only. Its success gates the service's first start (use `after_success`)."""
    spec = ServiceSpec(
        role=role,
        image=release.image,
        resources=JOB_RESOURCES,
        attachments=[release.attachment],
        healthcheck=None,
        one_shot=True,
        entrypoint=["/bin/sh", "/usr/local/bin/config-release"],
        envs=[
            f"RELEASE_DIR={release.release_dir}",
            "RELEASE_FILES=" + " ".join(f"{staged.path}={target}" for staged, target in release.files),
            f"CHECK_COMMAND={release.check_command}",
            f"RELOAD_COMMAND={release.reload_command}",
        ],
        files=[
            *(staged for staged, _ in release.files),
            ConfigFile("/usr/local/bin/config-release", (TEMPLATE_DIR / "config-release.sh").read_text(), executable=True),
        ],
        volumes=[release.mount],
        user=release.user,
    )
    return service_container(name, name, component, spec, opts)
