"""Entry point of the medisys-platform policy pack, run by the Pulumi CLI, e.g.

    pulumi preview --stack prod --policy-pack policies \
        --policy-pack-config policies/config/prod.json

Constructing PolicyPack starts the analyzer server and never returns: tests import
`medisys_policies` instead of this file.
"""

import pulumi
import pulumi_policy.policy
from medisys_policies import ALL_POLICIES
from pulumi_policy import EnforcementLevel, PolicyPack

# The engine names the stack in its ConfigureStack call, not in the analyzer's environment
# (PULUMI_STACK is not set when a language host starts the pack), and pulumi-policy 1.21.0 keeps
# only the tags from that call. Take the stack and project too, so pulumi.get_stack() is right.
_configure_stack = pulumi_policy.policy._PolicyAnalyzerServicer.ConfigureStack


def _configure_stack_and_settings(self, request, context):
    pulumi.runtime.configure(pulumi.runtime.Settings(project=request.project, stack=request.stack, dry_run=request.dry_run))
    return _configure_stack(self, request, context)


pulumi_policy.policy._PolicyAnalyzerServicer.ConfigureStack = _configure_stack_and_settings

PolicyPack(
    name="medisys-platform-policies",
    policies=ALL_POLICIES,
    enforcement_level=EnforcementLevel.ADVISORY,
)
