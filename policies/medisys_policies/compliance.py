"""Which controls each policy evidences: the one place the pack maps policies to HIPAA and CIS.

`CONTROLS` lists the controls the pack claims to evidence; `EVIDENCE` maps every policy to the
controls it checks, the primary one first. The decorators in framework.py read this table to
fill pulumi-policy's compliance fields (`framework` = the primary control, `tags` = every
control), and `report.py` uses it to build the per-stack compliance report. A policy that is
missing here, or a control no policy evidences, fails tests/policies/test_compliance.py.

HIPAA references are the Security Rule standards of 45 CFR Part 164 Subpart C. CIS references
are recommendation numbers of the CIS Docker Benchmark v1.6.0; its section 5 numbering differs
from v1.5.0 (v1.6.0 5.5 "privileged containers" was 5.4 in v1.5.0), so a number is only
meaningful with the version.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

HIPAA_NAME: Final = "HIPAA Security Rule"
HIPAA_VERSION: Final = "45 CFR Part 164 Subpart C (2013)"
CIS_NAME: Final = "CIS Docker Benchmark"
CIS_VERSION: Final = "v1.6.0"


@dataclass(frozen=True)
class Control:
    """One control of a compliance framework, as pulumi-policy's PolicyComplianceFramework names it."""

    key: str  # "hipaa-164.312(a)(1)", "cis-docker-1.6.0-5.5": also the policy tag
    framework: str
    version: str
    reference: str
    title: str

    @property
    def label(self) -> str:
        short = "HIPAA" if self.framework == HIPAA_NAME else f"CIS Docker {self.version}"
        return f"{short} {self.reference}"


def _hipaa(reference: str, title: str) -> Control:
    return Control(f"hipaa-{reference}", HIPAA_NAME, HIPAA_VERSION, reference, title)


def _cis(reference: str, title: str) -> Control:
    return Control(f"cis-docker-1.6.0-{reference}", CIS_NAME, CIS_VERSION, reference, title)


_ALL: Final = [
    _hipaa("164.312(a)(1)", "Access control"),
    _hipaa("164.312(b)", "Audit controls"),
    _hipaa("164.312(c)(1)", "Integrity"),
    _hipaa("164.312(d)", "Person or entity authentication"),
    _hipaa("164.312(e)(1)", "Transmission security"),
    _hipaa("164.308(a)(7)", "Contingency plan (data backup, disaster recovery)"),
    _cis("2.7", "Ensure TLS authentication for Docker daemon is configured"),
    _cis("4.1", "Ensure that a user for the container has been created"),
    _cis("5.2", "Ensure that, if applicable, an AppArmor Profile is enabled"),
    _cis("5.4", "Ensure that Linux kernel capabilities are restricted within containers"),
    _cis("5.5", "Ensure that privileged containers are not used"),
    _cis("5.6", "Ensure sensitive host system directories are not mounted on containers"),
    _cis("5.9", "Ensure that only needed ports are open on the container"),
    _cis("5.10", "Ensure that the host's network namespace is not shared"),
    _cis("5.11", "Ensure that the memory usage for containers is limited"),
    _cis("5.12", "Ensure that CPU priority is set appropriately on containers"),
    _cis("5.14", "Ensure that incoming container traffic is bound to a specific host interface"),
    _cis("5.16", "Ensure that the host's process namespace is not shared"),
    _cis("5.17", "Ensure that the host's IPC namespace is not shared"),
    _cis("5.18", "Ensure that host devices are not directly exposed to containers"),
    _cis("5.22", "Ensure the default seccomp profile is not Disabled"),
    _cis("5.26", "Ensure that the container is restricted from acquiring additional privileges"),
    _cis("5.27", "Ensure that container health is checked at runtime"),
    _cis("5.31", "Ensure that the host's user namespaces are not shared"),
    _cis("5.32", "Ensure that the Docker socket is not mounted inside any containers"),
]
CONTROLS: Final[dict[str, Control]] = {c.key: c for c in _ALL}

A1, B, C1, D, E1, A7 = (
    "hipaa-164.312(a)(1)",
    "hipaa-164.312(b)",
    "hipaa-164.312(c)(1)",
    "hipaa-164.312(d)",
    "hipaa-164.312(e)(1)",
    "hipaa-164.308(a)(7)",
)


def _c(*refs: str) -> tuple[str, ...]:
    return tuple(f"cis-docker-1.6.0-{r}" for r in refs)


# policy -> the controls it evidences, the primary first (that one becomes `framework`).
# Not claimed, because no policy checks it: CIS 5.13 read-only root filesystem, 5.15 restart
# on-failure:5 (the pack allows unless-stopped), 5.21 UTS namespace, 5.28 (image freshness,
# not pinning), 5.29 PIDs limit.
EVIDENCE: Final[dict[str, tuple[str, ...]]] = {
    # transmission security
    "tls-load-balancer-https-only": (E1,),
    "tls-app-backend-verified": (E1, D),  # no plain hop to the app servers; the edge authenticates each one
    "tls-postgres-ssl-on": (E1, D),  # hostssl + scram-sha-256 only
    "tls-redis-clients": (E1, D),  # TLS-only ports and a password
    "tls-grafana-access": (E1, A1),
    # contingency plan: backups, restore, failover, redundancy
    "backup-schedule-present": (A7,),
    "backup-retention-minimum": (A7,),
    "backup-offsite-repository": (A7,),  # 164.308(a)(7)(ii)(A)/(B): a copy that survives the site
    "backup-repository-encrypted": (A7, A1),  # 164.312(a)(2)(iv) encryption of the backup copy
    # The repository host and the members over pgBackRest's TLS server: backups and WAL reach the
    # real repository from every host, encrypted in transit, each side authenticated by certificate.
    "backup-repository-host-tls": (A7, E1, D),
    "backup-wal-archiving": (A7, C1),  # point-in-time recovery, no committed write lost
    "backup-redis-persistence": (A7, C1),
    "postgres-automatic-failover": (A7,),
    "postgres-synchronous-replication": (C1, A7),  # an acknowledged commit survives a failover
    "sizing-app-server-count": (A7,),
    "sizing-postgres-replica-present": (A7,),
    "sizing-redis-cluster-masters": (A7,),
    "sizing-redis-replica-per-master": (A7,),
    "sizing-redis-maxmemory": (C1,),  # Redis evicts by policy instead of being OOM-killed
    # access control: network exposure and segmentation
    "exposure-only-load-balancer-publishes": (A1, *_c("5.9")),
    "exposure-no-wildcard-bind": (A1, *_c("5.14")),
    "exposure-internal-segments": (A1, E1),
    "exposure-subnets-disjoint": (A1,),
    "exposure-segment-membership": (A1,),
    # container hardening
    "hardening-no-privileged": (*_c("5.5"), A1),
    "hardening-no-host-namespaces": (*_c("5.10", "5.16", "5.17", "5.31"), A1),
    "hardening-no-docker-socket": (*_c("5.32", "5.6", "5.18"), A1),
    "hardening-image-pinned": (C1,),
    "hardening-healthcheck-and-restart": (*_c("5.27"), A7),
    "hardening-non-root": (*_c("4.1"), A1),
    "hardening-no-new-privileges": (*_c("5.26"), A1),
    "hardening-capabilities-dropped": (*_c("5.4"), A1),
    "hardening-security-profiles-enabled": (*_c("5.22", "5.2"), A1),
    # 5.12: the policy requires a CPU limit (`cpus`), which caps what a container can take from
    # the others; the benchmark's own remediation is CPU shares (relative priority).
    "sizing-container-limits": _c("5.11", "5.12"),
    # authentication and secrets
    "secrets-generated-passwords": (D,),
    "secrets-no-plaintext-env": (D, A1),
    "secrets-not-in-config-files": (D, A1),
    # audit: every resource is attributable (role, stack, component) in Docker's events and
    # the metrics, and the pack judges the stack it was configured for.
    "labels-required": (B,),
    "policy-config-matches-stack": (B,),
    "monitoring-stack-present": (B, A7),  # alerts and dashboards: who sees a failure or breach
    "audit-access-logging": (B,),  # who reached the database and the site, when, from where
    # placement on several Docker hosts: one host lost leaves every service running elsewhere
    # (164.308(a)(7)(ii)(C) emergency mode operation), and the traffic between hosts and to the
    # engines is protected. 2.7 is the daemon's side of TLS: the pack sees the client side only (the
    # provider presents a certificate and trusts a CA); that the engine runs --tlsverify is the
    # host's configuration, outside the preview.
    "placement-minimum-hosts": (A7,),
    "placement-anti-affinity": (A7,),
    "placement-segments-span-hosts": (A1, A7),  # segments stay Docker networks, not published ports
    "placement-overlay-encrypted": (E1, C1),  # IPsec (ESP) between hosts: confidentiality and integrity
    "placement-engine-transport": (E1, *_c("2.7"), A1),  # the Docker API is root on its host
}


def controls_for(policy: str) -> list[Control]:
    """The controls `policy` evidences, primary first ([] for a policy not in EVIDENCE)."""
    return [CONTROLS[key] for key in EVIDENCE.get(policy, ())]


def tags_for(policy: str) -> list[str]:
    return [control.key for control in controls_for(policy)]
