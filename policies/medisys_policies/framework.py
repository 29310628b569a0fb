"""How a check becomes a CrossGuard policy: filtering, config, messages, and error handling.

A check is a plain function. `resource_policy` / `stack_policy` wrap it so that:
- it only sees the resource types (and container roles) it is about;
- it reads its config through `Settings`, with the schema defaults applied in code;
- every message has one shape: "<Kind> '<name>' (role r): <what is wrong>. Fix: <what to do>.";
- an unknown value during preview either fails closed (a "cannot verify" violation, for
  checks marked ``fail_closed``) or is left to the engine, which reports an advisory
  "can't run policy" diagnostic and runs the policy again during the update;
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

from .access import UnknownValueError
from .compliance import controls_for, tags_for
from .settings import Schema, Settings
from .shapes import Resource, resources_of

ResourceCheck = Callable[[Resource, Settings, "Reporter"], None]
StackCheck = Callable[[list[Resource], Settings, "Reporter"], None]


def current_stack() -> str:
    """The stack being previewed or updated (set from the engine's ConfigureStack call, see __main__.py)."""
    return pulumi.get_stack()


def format_message(subject: str, problem: str, fix: str) -> str:
    return f"{subject}: {problem.rstrip('. ')}. Fix: {fix.rstrip('. ')}."


class Reporter:
    """Formats and reports violations; counts them for callers that need to know."""

    def __init__(self, report: ReportViolation, subject: str) -> None:
        self._report = report
        self._subject = subject
        self.count = 0

    def violation(self, problem: str, fix: str, about: Resource | None = None) -> None:
        """Report one violation; in stack policies `about` points it at a resource."""
        subject = about.subject if about is not None else self._subject
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
    fail_closed: bool
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


def _run_guarded(name: str, fail_closed: bool, reporter: Reporter, run: Callable[[], None]) -> None:
    try:
        run()
    except UnknownValueError as err:
        if not fail_closed:
            raise  # the engine reports an advisory "can't run policy" and retries at update
        field = ".".join(str(part) for part in err.props)
        reporter.violation(
            f"cannot verify policy '{name}' during preview because `{field}` is computed "
            "(unknown until the update runs)",
            "make that input a literal in the program (a plain string, number or list, "
            "not an Output of another resource) so the policy can check it before deploying",
        )
    except Exception as err:  # noqa: BLE001 - escaping, it would abort the whole run
        reporter.violation(
            f"policy '{name}' failed internally ({type(err).__name__}), so this was not verified",
            "report this as a bug in policies/ with the resource type; do not deploy it unverified",
        )


def resource_policy(
    name: str,
    *,
    description: str,
    types: Collection[str],
    severity: Severity,
    config: Schema,
    fail_closed: bool,
    remediation: str,
    roles: Collection[str] | None = None,
) -> Callable[[ResourceCheck], ResourceValidationPolicy]:
    """Decorator: turn `check(resource, settings, reporter)` into a ResourceValidationPolicy."""

    def wrap(check: ResourceCheck) -> ResourceValidationPolicy:
        def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
            if args.resource_type not in types:
                return
            resource = Resource(args.resource_type, args.name, args.urn, args.props)
            reporter = Reporter(report_violation, resource.subject)
            settings = Settings(args.get_config(), config)

            def run() -> None:
                if roles is not None and resource.role not in roles:
                    return
                check(resource, settings, reporter)

            _run_guarded(name, fail_closed, reporter, run)

        REGISTRY[name] = PolicyInfo(
            name, "resource", fail_closed, config, frozenset(types), None if roles is None else frozenset(roles)
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


def stack_policy(
    name: str,
    *,
    description: str,
    severity: Severity,
    config: Schema,
    fail_closed: bool,
    remediation: str,
) -> Callable[[StackCheck], StackValidationPolicy]:
    """Decorator: turn `check(resources, settings, reporter)` into a StackValidationPolicy."""

    def wrap(check: StackCheck) -> StackValidationPolicy:
        def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
            reporter = Reporter(report_violation, f"Stack '{current_stack()}'")
            settings = Settings(args.get_config(), config)
            _run_guarded(
                name,
                fail_closed,
                reporter,
                lambda: check(resources_of(list(args.resources)), settings, reporter),
            )

        REGISTRY[name] = PolicyInfo(name, "stack", fail_closed, config)
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
