"""Entry point of the medisys-platform policy pack, run by the Pulumi CLI, e.g.

    pulumi preview --stack prod --policy-pack policies \
        --policy-pack-config policies/config/prod.json

Constructing PolicyPack starts the analyzer server and never returns: tests import
`medisys_policies` instead of this file.
"""

from medisys_policies import ALL_POLICIES
from pulumi_policy import EnforcementLevel, PolicyPack

PolicyPack(
    name="medisys-platform-policies",
    policies=ALL_POLICIES,
    enforcement_level=EnforcementLevel.ADVISORY,
)
