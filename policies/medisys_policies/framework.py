"""How a check becomes a CrossGuard policy: filtering, config, messages, and error handling.

A check is a plain function. `resource_policy` / `stack_policy` wrap it so that:
- it only sees the resource types (and container roles) it is about;
- it reads its config through `Settings`, with the schema defaults applied in code;
- every message has one shape: "<Kind> '<name>' (role r): <what is wrong>. Fix: <what to do>.";
- every policy fails closed on every unknown value it reads during a preview: the check sees
  its props through `access.watch`, which records each unknown read (even one the check
  catches or `peek`s past), and each resource with such reads gets one violation naming the
  property paths ("cannot verify ... unknown until the update runs"). Its level is the policy's,
  so prod (mandatory) fails the preview and staging/dev (advisory) warn; nothing is left to
  pulumi-policy's advisory "can't run policy", which a prod preview would pass;
- any other exception becomes a violation instead of failing the whole preview (an uncaught
  exception in any policy, even an advisory one, aborts the run). The exception's text is
  never reported, because it may quote a property value, and policies see secrets in plain text.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi_policy import (
    PolicyComplianceFramework,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)

from .access import UnknownReads, UnknownValueError, watch
from .compliance import controls_for, tags_for
from .settings import Schema, Settings
from .shapes import PROVIDER_TYPE_PREFIX, Resource, provider_of, resources_of

ResourceCheck = Callable[[Resource, Settings, "Reporter"], None]
StackCheck = Callable[[list[Resource], Settings, "Reporter"], None]


def current_stack() -> str:
    """The stack being previewed or updated (set from the engine's ConfigureStack call, see __main__.py)."""
    return pulumi.get_stack()


def format_message(subject: str, problem: str, fix: str) -> str:
    return f"{subject}: {problem.rstrip('. ')}. Fix: {fix.rstrip('. ')}."


class Reporter:
    """Formats and reports violations; counts them for callers that need to know."""

    def __init__(self, report: ReportViolation, subject: str | Resource) -> None:
        self._report = report
        self._subject = subject  # a Resource is named only when there is something to report
        self.count = 0

    def violation(self, problem: str, fix: str, about: Resource | None = None) -> None:
        """Report one violation; in stack policies `about` points it at a resource."""
        named = about if about is not None else self._subject
        subject = named if isinstance(named, str) else named.subject
        urn = about.urn if about is not None else None
        self.count += 1
        self._report(format_message(subject, problem, fix), urn)


def read_config(resource: Resource, path: str, reporter: Reporter, purpose: str) -> str | None:
    """The literal content of an uploaded config file, or None after reporting why not."""
    config = resource.config_file(path)
    if not config.uploaded:
        reporter.violation(
            f"no upload of {path} found, so {purpose} cannot be verified",
            f"upload the rendered file as uploads=[{{file: '{path}', content: <text>}}]",
        )
        return None
    if config.text is None:
        reporter.violation(
            f"{path} is not uploaded as literal `content`, so {purpose} cannot be verified",
            "render the file in the program and pass it as the upload's `content` string",
        )
        return None
    return config.text


@dataclass(frozen=True)
class PolicyInfo:
    """What the pack knows about a policy beyond what pulumi-policy stores."""

    name: str
    kind: str  # "resource" or "stack"
    schema: Schema
    # What a resource policy judges (None: every type / every role); the compliance report
    # lists a resource under a policy only when it passes these filters.
    types: frozenset[str] | None = None
    roles: frozenset[str] | None = None


REGISTRY: dict[str, PolicyInfo] = {}


def _framework(policy: str) -> PolicyComplianceFramework | None:
    """The primary control the policy evidences (compliance.EVIDENCE); every control is a tag."""
    controls = controls_for(policy)
    if not controls:
        return None
    first = controls[0]
    return PolicyComplianceFramework(
        name=first.framework, version=first.version, reference=first.reference, specification=first.title
    )


def _tags(policy: str) -> list[str]:
    return [policy.split("-", maxsplit=1)[0], *tags_for(policy)]


def _unknown_paths(paths: list[tuple[str, ...]]) -> str:
    return ", ".join(f"`{'.'.join(path)}`" for path in paths)


def _run_guarded(name: str, reporter: Reporter, reads: UnknownReads, run: Callable[[], None]) -> None:
    """Run a check; afterwards fail it closed on every unknown value it read.

    `run` sees props through `watch(..., reads, owner)`, where owner is the (unwatched) Resource
    in a stack policy and None in a resource policy (the reporter's own resource)."""
    try:
        run()
    except UnknownValueError as err:
        if not reads:  # the watched props record every unknown read before raising
            reads.record(None, err.props)
    except Exception as err:  # noqa: BLE001 - escaping, it would abort the whole run
        reporter.violation(
            f"policy '{name}' failed internally ({type(err).__name__}), so this was not verified",
            "report this as a bug in policies/ with the resource type; do not deploy it unverified",
        )
    reads.active = False
    by_owner: dict[int, tuple[Resource | None, list[tuple[str, ...]]]] = {}
    for owner, path in reads:
        by_owner.setdefault(id(owner), (owner, []))[1].append(path)
    for owner, paths in by_owner.values():
        reporter.violation(
            f"cannot verify policy '{name}' in this preview: {_unknown_paths(paths)} "
            f"{'is' if len(paths) == 1 else 'are'} unknown until the update runs (computed "
            "from another resource's output), so whether it complies cannot be known before "
            "the change is made",
            "give that input a value known before deploying (a literal or stack config, not an "
            "Output of another resource), or carry the computed value where no policy needs "
            "it (a label outside medisys.*, an uploaded file that is not a checked config)",
            about=owner,
        )


def resource_policy(
    name: str,
    *,
    description: str,
    types: Collection[str],
    severity: Severity,
    config: Schema,
    remediation: str,
    roles: Collection[str] | None = None,
) -> Callable[[ResourceCheck], ResourceValidationPolicy]:
    """Decorator: turn `check(resource, settings, reporter)` into a ResourceValidationPolicy."""

    def wrap(check: ResourceCheck) -> ResourceValidationPolicy:
        def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
            if args.resource_type not in types:
                return
            plain = Resource(args.resource_type, args.name, args.urn, args.props, provider_of(args.provider))
            reporter = Reporter(report_violation, plain)
            settings = Settings(args.get_config(), config)
            reads = UnknownReads()
            provider = plain.provider
            if provider is not None:  # its unknowns are this resource's: `provider.host`
                provider = Resource(
                    provider.type, provider.name, provider.urn, watch(provider.props, reads, prefix=("provider",))
                )
            resource = Resource(plain.type, plain.name, plain.urn, watch(plain.props, reads), provider)

            def run() -> None:
                if roles is not None and resource.role not in roles:
                    return
                check(resource, settings, reporter)

            _run_guarded(name, reporter, reads, run)

        REGISTRY[name] = PolicyInfo(
            name, "resource", config, frozenset(types), None if roles is None else frozenset(roles)
        )
        return ResourceValidationPolicy(
            name=name,
            description=description,
            validate=validate,
            config_schema=PolicyConfigSchema(properties={k: dict(v) for k, v in config.items()}),
            severity=severity,
            framework=_framework(name),
            tags=_tags(name),
            remediation_steps=remediation,
        )

    return wrap


def _watched_stack(views: list[Resource], reads: UnknownReads) -> list[Resource]:
    """The stack's resources as checks see them. A resource's provider props (the inputs of the
    provider it is created through) are watched on behalf of that provider resource, so an
    unknown `host` is reported once, against the provider, whichever resource it was read from."""
    providers = {v.urn: v for v in views if v.type.startswith(PROVIDER_TYPE_PREFIX)}
    watched = []
    for view in views:
        provider = view.provider
        if provider is not None:
            owner = providers.setdefault(provider.urn, provider)  # one owner per provider URN
            provider = Resource(provider.type, provider.name, provider.urn, watch(provider.props, reads, owner=owner))
        watched.append(Resource(view.type, view.name, view.urn, watch(view.props, reads, owner=view), provider))
    return watched


def stack_policy(
    name: str,
    *,
    description: str,
    severity: Severity,
    config: Schema,
    remediation: str,
) -> Callable[[StackCheck], StackValidationPolicy]:
    """Decorator: turn `check(resources, settings, reporter)` into a StackValidationPolicy."""

    def wrap(check: StackCheck) -> StackValidationPolicy:
        def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
            reporter = Reporter(report_violation, f"Stack '{current_stack()}'")
            settings = Settings(args.get_config(), config)
            reads = UnknownReads()
            resources = _watched_stack(resources_of(list(args.resources)), reads)
            _run_guarded(name, reporter, reads, lambda: check(resources, settings, reporter))

        REGISTRY[name] = PolicyInfo(name, "stack", config)
        return StackValidationPolicy(
            name=name,
            description=description,
            validate=validate,
            config_schema=PolicyConfigSchema(properties={k: dict(v) for k, v in config.items()}),
            severity=severity,
            framework=_framework(name),
            tags=_tags(name),
            remediation_steps=remediation,
        )

    return wrap


def schema(**properties: dict[str, Any]) -> Schema:
    """Build a config schema; every property must declare a default."""
    for key, spec in properties.items():
        if "default" not in spec:
            raise ValueError(f"config property {key!r} needs a default")
    return properties
