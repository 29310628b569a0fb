"""The compliance report of one stack, built from the engine's own output of a preview.

Input: the engine events of `pulumi preview --json` with PULUMI_ENABLE_STREAMING_JSON_PREVIEW
set (one JSON object per line; the same objects as `--event-log`):
- `resourcePreEvent`: every resource the preview registered (URN, type, input labels);
- `policyEvent`: every violation, with the policy, the resource URN and the message;
- `policyAnalyzeSummaryEvent`: per resource, the policies that ran without a violation;
- `policyAnalyzeStackSummaryEvent`: the same for stack policies.

The engine counts a policy as passed for every resource it gave no violation, also where the
pack's own type and role filters (framework.REGISTRY) make it return early; the report only
lists a resource under a policy when those filters select it. A resource is *not judged* by a
policy when the policy could not run on it: the engine's advisory "can't run policy" line (an
unknown value in a preview), the pack's fail-closed "cannot verify" violation, a policy that
failed internally, or no analysis at all (the preview stopped before the resource).

Nothing here reads or writes property values: only URNs, types, the role label, policy names
and the policies' own messages (which never quote values).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import ALL_POLICIES  # importing the policies fills framework.REGISTRY
from .compliance import CONTROLS, EVIDENCE, Control
from .framework import REGISTRY, PolicyInfo
from .shapes import KIND_NAMES, ROLE_LABEL

PASSED, FAILED, NOT_JUDGED, NO_RESOURCES = "passed", "failed", "not judged", "no resources"
STACK_TYPE = "pulumi:pulumi:Stack"

# Messages that say a policy did not judge the resource (it could not run), not that it failed:
# pulumi-policy's advisory line for an unknown value, and the pack's own (framework._run_guarded).
NOT_JUDGED_PATTERNS = (
    re.compile(r"can't run policy '"),
    re.compile(r"cannot verify policy '"),
    re.compile(r"policy '[^']+' failed internally"),
)


@dataclass
class Registered:
    urn: str
    type: str
    role: str | None


@dataclass
class Outcome:
    urn: str
    type: str
    name: str
    role: str | None
    status: str
    messages: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"urn": self.urn, "type": self.type, "name": self.name, "status": self.status}
        if self.role:
            data["role"] = self.role
        if self.messages:
            data["messages"] = self.messages
        return data


@dataclass
class EngineOutput:
    """What the report needs from one preview's events."""

    resources: dict[str, Registered] = field(default_factory=dict)
    violations: dict[tuple[str, str], list[tuple[str, str]]] = field(default_factory=dict)  # (policy, urn) -> [(level, msg)]
    stack_violations: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict)  # policy -> [(urn, level, msg)]
    analyzed: dict[str, tuple[set[str], set[str]]] = field(default_factory=dict)  # urn -> (passed, failed)
    stack_summary: tuple[set[str], set[str]] | None = None
    pack_name: str | None = None
    pack_version: str | None = None
    errors: list[str] = field(default_factory=list)
    stack_urn: str | None = None


def _labels_role(inputs: Mapping[str, Any]) -> str | None:
    labels = inputs.get("labels")
    if isinstance(labels, list):
        for item in labels:
            if isinstance(item, Mapping) and item.get("label") == ROLE_LABEL and isinstance(item.get("value"), str):
                return str(item["value"])
    return None


def _strip_description(policy: str, message: str, descriptions: Mapping[str, str]) -> str:
    """The engine prefixes each violation with the policy's description and a newline."""
    text = message.strip()
    prefix = descriptions.get(policy, "")
    if prefix and text.startswith(prefix):
        text = text[len(prefix) :].lstrip("\n ")
    return text


def read_events(lines: Iterable[str]) -> EngineOutput:
    """Collect the preview's resources, violations and policy summaries from its event lines."""
    out = EngineOutput()
    descriptions = {p.name: p.description for p in ALL_POLICIES}
    for line in lines:
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "resourcePreEvent" in event:
            meta = event["resourcePreEvent"].get("metadata") or {}
            state = meta.get("new") or meta.get("old") or {}
            urn, typ = meta.get("urn"), meta.get("type")
            if urn and typ and meta.get("op") != "delete":
                out.resources[urn] = Registered(urn, typ, _labels_role(state.get("inputs") or {}))
                if typ == STACK_TYPE:
                    out.stack_urn = urn
        elif "policyEvent" in event:
            p = event["policyEvent"]
            policy, urn, level = p.get("policyName", ""), p.get("resourceUrn", ""), p.get("enforcementLevel", "")
            message = _strip_description(policy, p.get("message", ""), descriptions)
            out.pack_name, out.pack_version = p.get("policyPackName"), p.get("policyPackVersion")
            info = REGISTRY.get(policy)
            if info is not None and info.kind == "stack":
                out.stack_violations.setdefault(policy, []).append((urn, level, message))
            else:
                out.violations.setdefault((policy, urn), []).append((level, message))
        elif "policyAnalyzeSummaryEvent" in event:
            s = event["policyAnalyzeSummaryEvent"]
            out.pack_name, out.pack_version = s.get("policyPackName"), s.get("policyPackVersion")
            out.analyzed[s["resourceUrn"]] = (set(s.get("passed") or []), set(s.get("failed") or []))
        elif "policyAnalyzeStackSummaryEvent" in event:
            s = event["policyAnalyzeStackSummaryEvent"]
            out.pack_name, out.pack_version = s.get("policyPackName"), s.get("policyPackVersion")
            out.stack_summary = (set(s.get("passed") or []), set(s.get("failed") or []))
        elif "diagnosticEvent" in event:
            d = event["diagnosticEvent"]
            if d.get("severity") == "error":
                out.errors.append((d.get("prefix", "") + d.get("message", "")).strip())
    return out


def _name(urn: str) -> str:
    return urn.rsplit("::", 1)[-1]


def _judges(info: PolicyInfo, resource: Registered) -> bool:
    if info.types is not None and resource.type not in info.types:
        return False
    return info.roles is None or resource.role in info.roles


def _not_judged(message: str) -> bool:
    return any(p.search(message) for p in NOT_JUDGED_PATTERNS)


def _status_from_messages(messages: list[str]) -> str:
    return FAILED if any(not _not_judged(m) for m in messages) else NOT_JUDGED


def resource_outcomes(policy: str, info: PolicyInfo, engine: EngineOutput) -> list[Outcome]:
    outcomes = []
    for urn, resource in sorted(engine.resources.items()):
        if not _judges(info, resource):
            continue
        messages = [m for _, m in engine.violations.get((policy, urn), [])]
        base = Outcome(urn, resource.type, _name(urn), resource.role, PASSED, messages)
        if messages:
            base.status = _status_from_messages(messages)
        elif urn not in engine.analyzed:
            base.status = NOT_JUDGED
            base.messages = ["the preview stopped before the policy pack analyzed this resource"]
        else:
            passed, failed = engine.analyzed[urn]
            if policy in failed:
                base.status = FAILED
            elif policy not in passed:
                base.status = NOT_JUDGED
                base.messages = ["the engine reported this policy neither passed nor failed (disabled?)"]
        outcomes.append(base)
    return outcomes


def stack_outcomes(policy: str, engine: EngineOutput) -> list[Outcome]:
    stack_urn = engine.stack_urn or "(stack)"
    violations = engine.stack_violations.get(policy, [])
    if violations:
        by_urn: dict[str, list[str]] = {}
        for urn, _, message in violations:
            by_urn.setdefault(urn or stack_urn, []).append(message)
        outcomes = []
        for urn, messages in sorted(by_urn.items()):
            resource = engine.resources.get(urn)
            outcomes.append(
                Outcome(
                    urn,
                    resource.type if resource else STACK_TYPE,
                    _name(urn),
                    resource.role if resource else None,
                    _status_from_messages(messages),
                    messages,
                )
            )
        return outcomes
    if engine.stack_summary is None:
        return [Outcome(stack_urn, STACK_TYPE, _name(stack_urn), None, NOT_JUDGED, ["the preview stopped before the stack policies ran"])]
    passed, failed = engine.stack_summary
    status = FAILED if policy in failed else PASSED if policy in passed else NOT_JUDGED
    return [Outcome(stack_urn, STACK_TYPE, _name(stack_urn), None, status)]


def _rollup(statuses: Iterable[str]) -> str:
    found = set(statuses)
    for status in (FAILED, NOT_JUDGED, PASSED):
        if status in found:
            return status
    return NO_RESOURCES


def enforcement_levels(policy_config: Mapping[str, Any]) -> dict[str, str]:
    """Each policy's level under a --policy-pack-config document (pack default: advisory)."""
    default = policy_config.get("all", "advisory")
    default = default.get("enforcementLevel", "advisory") if isinstance(default, Mapping) else str(default)
    levels = {}
    for name in REGISTRY:
        entry = policy_config.get(name, default)
        levels[name] = entry.get("enforcementLevel", default) if isinstance(entry, Mapping) else str(entry)
    return levels


def build_report(
    engine: EngineOutput, *, stack: str, commit: str, policy_config: Mapping[str, Any], preview: Mapping[str, Any]
) -> dict[str, Any]:
    """control -> policies -> each resource the policy judges: passed / failed / not judged."""
    levels = enforcement_levels(policy_config)
    per_policy: dict[str, dict[str, Any]] = {}
    for policy, info in sorted(REGISTRY.items()):
        outcomes = stack_outcomes(policy, engine) if info.kind == "stack" else resource_outcomes(policy, info, engine)
        counts = {s: sum(1 for o in outcomes if o.status == s) for s in (PASSED, FAILED, NOT_JUDGED)}
        per_policy[policy] = {
            "policy": policy,
            "kind": info.kind,
            "enforcementLevel": levels.get(policy, "advisory"),
            "status": _rollup(o.status for o in outcomes),
            "counts": counts,
            "resources": [o.as_json() for o in outcomes],
        }
    controls = []
    for control in CONTROLS.values():
        policies = [per_policy[p] for p, keys in EVIDENCE.items() if control.key in keys and p in per_policy]
        controls.append(_control_entry(control, policies))
    return {
        "stack": stack,
        "commit": commit,
        "policyPack": {"name": engine.pack_name, "version": engine.pack_version},
        "preview": dict(preview),
        "summary": [{k: c[k] for k in ("control", "framework", "reference", "title", "status", "policies", "resources")} for c in controls],
        "controls": controls,
        "unmappedPolicies": sorted(set(REGISTRY) - set(EVIDENCE)),
    }


def _control_entry(control: Control, policies: list[dict[str, Any]]) -> dict[str, Any]:
    totals = {s: sum(p["counts"][s] for p in policies) for s in (PASSED, FAILED, NOT_JUDGED)}
    return {
        "control": control.label,
        "framework": f"{control.framework} {control.version}",
        "reference": control.reference,
        "title": control.title,
        "status": _rollup(p["status"] for p in policies if p["status"] != NO_RESOURCES),
        "policies": len(policies),
        "resources": totals,
        "evidence": policies,
    }


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def summary_table(report: Mapping[str, Any]) -> str:
    """The Markdown summary table: one row per control."""
    rows = ["| control | title | status | policies | passed | failed | not judged |", "|---|---|---|---|---|---|---|"]
    for row in report["summary"]:
        r = row["resources"]
        rows.append(
            f"| {row['control']} | {_cell(row['title'])} | **{row['status']}** | {row['policies']} | "
            f"{r[PASSED]} | {r[FAILED]} | {r[NOT_JUDGED]} |"
        )
    return "\n".join(rows)


def markdown(report: Mapping[str, Any]) -> str:
    pack = report["policyPack"]
    preview = report["preview"]
    lines = [
        f"# Compliance report: stack `{report['stack']}`",
        "",
        f"- policy pack: `{pack['name']}` version `{pack['version']}`, config `{preview.get('policyConfig')}`",
        f"- commit: `{report['commit']}`",
        f"- preview: {'succeeded' if preview.get('succeeded') else 'FAILED (mandatory violations or errors)'}; "
        f"{preview.get('resources', 0)} resources; {preview.get('target', '')}",
        f"- generated: {preview.get('generated', '')}",
        "",
        "Each row counts resource results over the policies that evidence the control "
        "(a resource judged by two of its policies counts twice).",
        "",
        summary_table(report),
        "",
    ]
    for control in report["controls"]:
        lines += [f"## {control['control']}: {control['title']} ({control['status']})", ""]
        for policy in control["evidence"]:
            c = policy["counts"]
            lines.append(
                f"- `{policy['policy']}` ({policy['kind']} policy, {policy['enforcementLevel']}): **{policy['status']}**"
                f" ({c[PASSED]} passed, {c[FAILED]} failed, {c[NOT_JUDGED]} not judged)"
            )
            for resource in policy["resources"]:
                if resource["status"] == PASSED:
                    continue
                for message in resource.get("messages", []) or [""]:
                    lines.append(
                        f"  - {resource['status']}: `{resource['name']}` ({KIND_NAMES.get(resource['type'], resource['type'])}) {_cell(message)}"
                    )
            passed = [r["name"] for r in policy["resources"] if r["status"] == PASSED]
            if passed:
                lines.append(f"  - passed: {', '.join(f'`{n}`' for n in passed)}")
        lines.append("")
    if report["unmappedPolicies"]:
        lines += ["## Policies that evidence no control", "", *[f"- `{p}`" for p in report["unmappedPolicies"]], ""]
    return "\n".join(lines)
