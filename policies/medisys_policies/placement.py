"""Placement on several Docker hosts: how many hosts the containers run on, what must not share a
host, whether the network segments span the hosts (encrypted between them), and how the deployer
reaches each engine.

Where a resource runs is the provider it is created through: pulumi-policy's `provider` (the
engine's own record of the provider resource: its type, name, URN and inputs), never a label.
A `medisys.host` label is for people only and is not read.

- The engine gives a resource created without an explicit provider its default provider (named
  "default" or "default_<version>"); outside the engine `provider` may be None. Both are "the
  default provider": the engine the deployer's DOCKER_HOST (or the stack's docker:host config)
  points at.
- Two providers are one host when their `host` names the same machine (scheme, user and port do
  not matter: ssh:// and tcp:// to one machine share its failures). `unix://`, `npipe://`, an empty
  `host` and the default provider without one are the deployer's own machine. A provider with a
  `context` is the engine of that Docker context. Aliases (an IP address and a DNS name of one
  machine) cannot be told apart.
- Reading `host` or `context` of an unknown value fails the policy closed (framework.py); the
  host is then counted as its own machine so the rest is still judged.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any, Final
from urllib.parse import urlsplit

from pulumi_policy import Severity

from .access import UNKNOWN, as_bool, as_str, elements, get, is_mapping, is_sequence, peek
from .framework import Reporter, resource_policy, schema, stack_policy
from .settings import Settings
from .shapes import CONTAINER, DOCKER_PROVIDER, NETWORK, VOLUME, Resource, containers

LOCAL: Final = "local"  # the deployer's own machine
LOCAL_SCHEMES: Final = frozenset({"unix", "npipe"})
PLACED_TYPES: Final = (CONTAINER, NETWORK, VOLUME)
TLS_MATERIAL: Final = ("caMaterial", "certMaterial", "keyMaterial")
FORMER_ROLE: Final = "redis-cluster-init"
SHARDS_ENV: Final = "SHARDS"
_SSH_NO_HOST_KEY_CHECK: Final = re.compile(r"stricthostkeychecking\s*[=\s]\s*(no|off)\b")


def is_default_provider(provider: Resource | None) -> bool:
    """The engine's default provider (or none reported): not one the program chose."""
    return provider is None or provider.name.startswith("default")


def machine_of(host: str) -> str:
    """Which machine a provider `host` names (internal key, never shown)."""
    text = host.strip()
    scheme, sep, _ = text.partition("://")
    if not sep:
        return f"address:{text.lower()}"
    if scheme.lower() in LOCAL_SCHEMES:
        return LOCAL
    try:
        name = urlsplit(text).hostname
    except ValueError:
        name = None
    return f"machine:{(name or text).lower()}"


def _machine(provider: Resource | None) -> str:
    if provider is None:
        return LOCAL
    host, context = peek(provider.props, "host"), peek(provider.props, "context")
    if host is UNKNOWN or context is UNKNOWN:  # fails closed; counted as a machine of its own
        return f"provider:{provider.urn}"
    if isinstance(context, str) and context.strip():
        return f"context:{context.strip()}"
    if not isinstance(host, str) or not host.strip():
        return LOCAL
    return machine_of(host)


def _provider_label(provider: Resource | None) -> str:
    if provider is None:
        return "the default docker provider"
    if is_default_provider(provider):
        return f"'{provider.name}' (the default docker provider)"
    return f"'{provider.name}'"


class Hosts:
    """The Docker host (machine) of every container of the stack."""

    def __init__(self, resources: list[Resource]) -> None:
        self._of: dict[str, str] = {}
        self._labels: dict[str, set[str]] = {}
        machines: dict[str | None, str] = {}  # provider URN -> machine, each provider read once
        for res in containers(resources):
            urn = res.provider.urn if res.provider is not None else None
            if urn not in machines:
                machines[urn] = _machine(res.provider)
            key = machines[urn]
            self._of[res.urn] = key
            self._labels.setdefault(key, set()).add(_provider_label(res.provider))

    def of(self, res: Resource) -> str:
        return self._of[res.urn]

    @property
    def keys(self) -> list[str]:
        return sorted(self._labels, key=self.label)

    @property
    def count(self) -> int:
        return len(self._labels)

    def label(self, key: str) -> str:
        """How messages name a host: the provider(s) that reach it (logical names, not values)."""
        names = sorted(self._labels[key])
        if len(names) == 1:
            return names[0]
        return " and ".join(names) + " (one machine)"

    def describe(self) -> str:
        return ", ".join(self.label(key) for key in self.keys)


def _long_running(resources: list[Resource], role: str) -> list[Resource]:
    return [c for c in containers(resources, role) if not c.is_one_shot()]


def _by_host(members: Iterable[Resource], hosts: Hosts) -> dict[str, list[Resource]]:
    groups: dict[str, list[Resource]] = {}
    for member in members:
        groups.setdefault(hosts.of(member), []).append(member)
    return groups


# --- how many hosts ------------------------------------------------------------------------------


@stack_policy(
    "placement-minimum-hosts",
    description="Containers run on at least minHosts distinct Docker hosts (the providers they are "
    "created through); with requireExplicitHosts, no container, network or volume is created "
    "through the default docker provider.",
    severity=Severity.HIGH,
    config=schema(
        minHosts={
            "type": "integer",
            "minimum": 1,
            "default": 1,
            "description": "Distinct Docker hosts (machines) the containers must run on.",
        },
        requireExplicitHosts={
            "type": "boolean",
            "default": False,
            "description": "Every container, network and volume is created through an explicit "
            "provider (never the default one, which is whatever the deployer's DOCKER_HOST says).",
        },
    ),
    remediation="List the stack's Docker hosts in medisys:hosts and create every container, network "
    "and volume through its host's docker.Provider (components/hosts.py, placement.py).",
)
def minimum_hosts(resources: list[Resource], settings: Settings, reporter: Reporter) -> None:
    hosts = Hosts(resources)
    if settings.flag("requireExplicitHosts"):
        for res in resources:
            if res.type in PLACED_TYPES and is_default_provider(res.provider):
                what = "where it and the data it holds are kept" if res.type == VOLUME else "where it runs"
                reporter.violation(
                    "is created through the default docker provider, not its host's provider, so it "
                    "lands on whatever engine the deployer's DOCKER_HOST (or docker:host) points at: "
                    f"the stack cannot account for {what}",
                    "create it with ResourceOptions(provider=<its host's docker.Provider>) as "
                    "DockerHosts.options does (components/hosts.py)",
                    about=res,
                )
    minimum = settings.integer("minHosts")
    if hosts.count and hosts.count < minimum:
        reporter.violation(
            f"runs its containers on {hosts.count} Docker host(s) ({hosts.describe()}); at least "
            f"{minimum} required, so that losing one host leaves the platform running on the others",
            f"list at least {minimum} Docker hosts, each its own machine, in medisys:hosts and let "
            "placement.py spread the containers over them",
        )


# --- what must not share a host ------------------------------------------------------------------


def _one_per_host(members: list[Resource], hosts: Hosts, what: str, why: str, fix: str, reporter: Reporter) -> None:
    for key, group in _by_host(members, hosts).items():
        if len(group) < 2:
            continue
        first, *rest = sorted(group, key=lambda r: r.name)
        for member in rest:
            reporter.violation(
                f"runs on the same Docker host as {what} '{first.name}' ({hosts.label(key)}), so "
                f"losing that host loses {len(group)} of the {len(members)} {what}s at once; {why}",
                fix,
                about=member,
            )


def _redis_addresses(node: Resource) -> list[str]:
    addresses = []
    for _, attachment in elements(node.get("networksAdvanced")):
        address = as_str(get(attachment, "ipv4Address"))
        if address:
            addresses.append(address.strip())
    return addresses


def _shards(value: str) -> list[list[str]]:
    """SHARDS: shards separated by spaces, each `master:port,replica:port...`; the addresses."""
    shards = []
    for shard in value.split():
        members = [m.strip() for m in shard.split(",") if m.strip()]
        shards.append([m.rpartition(":")[0] if ":" in m else m for m in members])
    return shards


def _redis_shards(resources: list[Resource], hosts: Hosts, reporter: Reporter) -> None:
    nodes = _long_running(resources, "redis")
    if not nodes:
        return
    formers = containers(resources, FORMER_ROLE)
    value = next((v for v in (f.env_value(SHARDS_ENV) for f in formers) if v is not None), None)
    former = formers[0] if formers else None
    if value is None or not value.split():
        reporter.violation(
            f"the {FORMER_ROLE} job states no {SHARDS_ENV} (master,replica... per shard), so which "
            "Redis node replicates which master, and whether the two share a Docker host, cannot "
            "be verified",
            f"form the cluster with the {FORMER_ROLE} job and set {SHARDS_ENV}=<master>:6379,"
            "<replica>:6379 ... from the placement plan (components/redis_cluster.py)",
            about=former,
        )
        return
    by_address: dict[str, list[Resource]] = {}
    for node in nodes:
        for address in _redis_addresses(node):
            by_address.setdefault(address, []).append(node)
    placed: set[str] = set()
    for number, shard in enumerate(_shards(value), start=1):
        resolved: list[Resource] = []
        for position, address in enumerate(shard, start=1):
            matches = by_address.get(address, [])
            if len(matches) == 1:
                resolved.append(matches[0])
                placed.add(matches[0].urn)
                continue
            problem = "no Redis node container has" if not matches else "several Redis node containers have"
            reporter.violation(
                f"{SHARDS_ENV} names, as node {position} of shard {number}, an address {problem} "
                "(networksAdvanced[].ipv4Address), so whether that shard's master and replicas "
                "run on different Docker hosts cannot be verified",
                f"build {SHARDS_ENV} from the addresses the placement plan gives the Redis node "
                "containers",
                about=former,
            )
        if len(resolved) < len(shard) or len(resolved) < 2:
            continue  # unverifiable (reported above), or a shard without replicas (sizing policies)
        master, *replicas = resolved
        for replica in replicas:
            if hosts.of(replica) == hosts.of(master):
                reporter.violation(
                    f"is a replica of Redis master '{master.name}' (shard {number} of {SHARDS_ENV}) on "
                    f"the same Docker host ({hosts.label(hosts.of(master))}), so losing that host "
                    "loses the shard: its slots go unserved and the cluster stops accepting writes",
                    "place each replica on another host than its master (placement.py pairs "
                    "replica r of shard s with host s + r; check medisys:placement.redis)",
                    about=replica,
                )
    for node in nodes:
        if node.urn not in placed:
            reporter.violation(
                f"is in no shard of the {FORMER_ROLE} job's {SHARDS_ENV}, so which master it "
                "replicates, and whether they share a Docker host, cannot be verified",
                f"list every Redis node in exactly one shard of {SHARDS_ENV} (components/redis_cluster.py)",
                about=node,
            )


def _app_spread(resources: list[Resource], hosts: Hosts, reporter: Reporter) -> None:
    apps = _long_running(resources, "app")
    if not apps:
        return
    counts = {key: 0 for key in hosts.keys}
    for app in apps:
        counts[hosts.of(app)] += 1
    if max(counts.values()) - min(counts.values()) > 1:
        spread = ", ".join(f"{hosts.label(key)}: {count}" for key, count in counts.items())
        reporter.violation(
            f"spreads its {len(apps)} app server(s) unevenly over its {hosts.count} Docker hosts "
            f"({spread}); the counts per host may differ by at most 1, so that losing any host "
            "takes no more than its share of the capacity",
            "let placement.py spread the app servers round-robin over every host (remove or widen "
            "medisys:placement.app)",
        )


def _edges(resources: list[Resource], hosts: Hosts, minimum: int, reporter: Reporter) -> None:
    if minimum <= 1:
        return
    edges = _long_running(resources, "load-balancer")
    distinct = {hosts.of(edge) for edge in edges}
    if len(distinct) < minimum:
        reporter.violation(
            f"runs {len(edges)} load-balancer edge(s) on {len(distinct)} Docker host(s); at least "
            f"{minimum} edges on distinct hosts required, so that losing one host leaves an edge "
            "taking the traffic",
            f"run one edge per host on at least {minimum} hosts (medisys:load_balancer.edges, "
            "medisys:placement.load_balancer) and list every edge's address in DNS or the L4 "
            "balancer in front",
        )


@stack_policy(
    "placement-anti-affinity",
    description="On several Docker hosts, no two PostgreSQL members and no two etcd members share a "
    "host, no Redis replica shares its master's host (SHARDS of the redis-cluster-init job), app "
    "servers are spread evenly; at least minLoadBalancerEdges edges run on distinct hosts.",
    severity=Severity.HIGH,
    config=schema(
        minLoadBalancerEdges={
            "type": "integer",
            "minimum": 1,
            "default": 1,
            "description": "Load-balancer containers that must run on distinct hosts (judged even "
            "on one host: set it above 1 only where minHosts is above 1).",
        }
    ),
    remediation="Let placement.py spread the members, replicas, app servers and edges over the "
    "hosts (medisys:placement pins a role to hosts; pin none of them to one host).",
)
def anti_affinity(resources: list[Resource], settings: Settings, reporter: Reporter) -> None:
    hosts = Hosts(resources)
    _edges(resources, hosts, settings.integer("minLoadBalancerEdges"), reporter)
    if hosts.count <= 1:
        return
    _one_per_host(
        _long_running(resources, "postgres"),
        hosts,
        "PostgreSQL member",
        "a failover needs a member left on another host",
        "place each PostgreSQL member on its own host (placement.py spreads them; "
        "medisys:placement.postgres must list as many hosts as there are members)",
        reporter,
    )
    _one_per_host(
        _long_running(resources, "etcd"),
        hosts,
        "etcd member",
        "one member per host keeps etcd's quorum (and Patroni's leader) through the loss of any one host",
        "place each etcd member on its own host (placement.py spreads them; "
        "medisys:placement.etcd must list at least three hosts)",
        reporter,
    )
    _redis_shards(resources, hosts, reporter)
    _app_spread(resources, hosts, reporter)


# --- segments across hosts -----------------------------------------------------------------------


def _host_local(network: Resource, resources: list[Resource], hosts: Hosts) -> bool:
    """Every container that joins `network` (by its name) is created on the network's own host,
    and at least one does: judged from the containers' specs and providers, never from a label."""
    name = as_str(network.get("name"))
    if not name:
        return False
    joiners = [c for c in containers(resources)
               if any(as_str(get(a, "name")) == name for _, a in elements(c.get("networksAdvanced")))]
    own = _machine(network.provider)
    return bool(joiners) and all(hosts.of(c) == own for c in joiners)


@stack_policy(
    "placement-segments-span-hosts",
    description="When containers run on more than one Docker host, every network is an attachable "
    "multi-host network (overlay), so each segment reaches its containers on every host.",
    severity=Severity.HIGH,
    config=schema(
        multiHostDrivers={
            "type": "array",
            "items": {"type": "string"},
            "default": ["overlay"],
            "description": "Network drivers whose networks span the Docker hosts.",
        }
    ),
    remediation="On several hosts create every segment as driver overlay with attachable true (the "
    "hosts joined in one Swarm), as components/network.py does.",
)
def segments_span_hosts(resources: list[Resource], settings: Settings, reporter: Reporter) -> None:
    hosts = Hosts(resources)
    if hosts.count <= 1:
        return
    drivers = {d.lower() for d in settings.texts("multiHostDrivers")}
    for network in (r for r in resources if r.type == NETWORK):
        driver = (as_str(network.get("driver")) or "bridge").strip().lower()
        if driver not in drivers and _host_local(network, resources, hosts):
            # Joined only by containers on its own host (e.g. the database gateway's bridge, the
            # one network Docker publishes its port through): it needs to reach no other host.
            continue
        if driver not in drivers:
            reporter.violation(
                f"is not a multi-host network (its driver is not {' or '.join(sorted(drivers))}) in a stack "
                f"whose containers run on {hosts.count} Docker hosts: it exists on one engine only, so "
                "the segment does not reach the containers on the other hosts",
                "create the segment with driver overlay and attachable true on the Swarm the hosts "
                "form (components/network.py)",
                about=network,
            )
        elif driver == "overlay" and not as_bool(network.get("attachable")):
            reporter.violation(
                "is an overlay network without `attachable`, so containers that are not Swarm "
                "services cannot join it and the segment does not reach them",
                "set attachable true on the network",
                about=network,
            )


# --- encryption between hosts --------------------------------------------------------------------


@resource_policy(
    "placement-overlay-encrypted",
    description="With requireEncryptedOverlays, every overlay network carries Docker's `encrypted` "
    "option (IPsec between the hosts).",
    types=[NETWORK],
    severity=Severity.CRITICAL,
    config=schema(
        requireEncryptedOverlays={
            "type": "boolean",
            "default": False,
            "description": "Overlay networks must set the `encrypted` driver option.",
        }
    ),
    remediation="Create overlay networks with options={'encrypted': ''} (docker network create "
    "--opt encrypted) and allow IPsec (ESP, IP protocol 50) between the hosts.",
)
def overlay_encrypted(res: Resource, settings: Settings, reporter: Reporter) -> None:
    driver = (as_str(res.get("driver")) or "").strip().lower()
    if driver != "overlay" or not settings.flag("requireEncryptedOverlays"):
        return
    options = res.get("options")
    # Docker encrypts an overlay when the option is present, whatever its value (--opt encrypted).
    if not (is_mapping(options) and "encrypted" in list(options.keys())):
        reporter.violation(
            "is an overlay network without Docker's `encrypted` option, so the traffic of its "
            "segment (PHI included) crosses the wire between hosts in clear VXLAN",
            "set options={'encrypted': ''} on the network (medisys:networks.encrypted) and allow "
            "ESP (IP protocol 50) between the hosts",
        )


# --- how the deployer reaches each engine --------------------------------------------------------

_TRANSPORT_FIX: Final = (
    "reach the engine over ssh://USER@HOST, or over tcp://HOST:2376 with caMaterial, certMaterial "
    "and keyMaterial (secret config medisys:host_tls.<host>) or a certPath, the engine running "
    "with --tlsverify"
)


def _ssh_options(value: Any) -> list[str]:
    """sshOpts: a list, or the JSON text pulumi-docker's SDK sends for a provider's list input."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return [value]
        if isinstance(value, str):
            return [value]
    if isinstance(value, list) or is_sequence(value):
        return [item for _, item in elements(value) if isinstance(item, str)]
    return []


def _check_tls(res: Resource, reporter: Reporter) -> None:
    cert_path = as_str(res.get("certPath"))
    if cert_path and cert_path.strip():
        return
    values = {key: peek(res.props, key) for key in TLS_MATERIAL}  # all read: every unknown counts
    if any(value is UNKNOWN for value in values.values()):
        return  # fails closed (framework); the values are never needed beyond "present"
    missing = [key for key, value in values.items() if not (isinstance(value, str) and value.strip())]
    if missing:
        reporter.violation(
            "reaches its engine over tcp:// without full TLS client material "
            f"({', '.join(f'`{key}`' for key in missing)} not set, no `certPath`), so either the "
            "engine's identity goes unverified or the engine takes clients without a certificate: "
            "its API (root on that host) open to anyone who reaches the port, the deploy in clear",
            _TRANSPORT_FIX,
        )


@resource_policy(
    "placement-engine-transport",
    description="Each docker provider reaches its engine over ssh://, over tcp:// with TLS client "
    "material (ca, cert and key, or certPath), or over a local socket; never plain http:// or "
    "tcp:// without TLS. With requireExplicitHosts, every provider names its engine in `host`.",
    types=[DOCKER_PROVIDER],
    severity=Severity.CRITICAL,
    config=schema(
        requireExplicitHosts={
            "type": "boolean",
            "default": False,
            "description": "A provider must set `host` (no deployer's DOCKER_HOST, no `context`).",
        }
    ),
    remediation="Set each docker provider's host to ssh://USER@HOST, or tcp://HOST:2376 with "
    "caMaterial/certMaterial/keyMaterial from secret config (medisys:hosts, medisys:host_tls).",
)
def engine_transport(res: Resource, settings: Settings, reporter: Reporter) -> None:
    explicit = settings.flag("requireExplicitHosts")
    context = as_str(res.get("context"))
    if context and context.strip():
        if explicit:
            reporter.violation(
                "selects a Docker context (`context`), which overrides `host`: which engine it "
                "reaches, and how, is kept in the deployer's ~/.docker and cannot be verified",
                "remove `context` and set `host` to the engine's ssh:// or tcp:// address (medisys:hosts)",
            )
        return
    host = res.get("host")
    if host is not None and not isinstance(host, str):
        reporter.violation("`host` is not a string, so how the engine is reached cannot be verified", _TRANSPORT_FIX)
        return
    text = (host or "").strip()
    if not text:
        if explicit:
            reporter.violation(
                "sets no `host`, so it reaches whatever engine the deployer's DOCKER_HOST (or local "
                "socket) points at: where the stack runs, and over what transport, depends on who deploys",
                "set `host` to the engine's ssh://USER@HOST or tcp://HOST:2376 address (medisys:hosts[].docker_host)",
            )
        return
    scheme, sep, _ = text.partition("://")
    scheme = scheme.lower() if sep else ""
    if scheme in LOCAL_SCHEMES:
        return
    if scheme == "ssh":
        options = " ".join(_ssh_options(res.get("sshOpts"))).lower()
        if _SSH_NO_HOST_KEY_CHECK.search(options):
            reporter.violation(
                "reaches its engine over ssh:// with StrictHostKeyChecking off in `sshOpts`, so the "
                "deploy (containers, secrets, data) goes to whatever machine answers at that address",
                "remove StrictHostKeyChecking=no from sshOpts and put the engine's host key in the "
                "deployer's known_hosts (checked against the host's own fingerprint)",
            )
        return
    if scheme in ("tcp", "https"):
        _check_tls(res, reporter)
        return
    if scheme == "http":
        reporter.violation(
            "reaches its engine over plain http://: the Docker API (root on that host) and "
            "everything the deploy sends it cross the network unauthenticated and in clear",
            _TRANSPORT_FIX,
        )
        return
    reporter.violation(
        "has a `host` that is not a unix://, ssh:// or tcp:// address, so how the engine is "
        "reached cannot be verified",
        _TRANSPORT_FIX,
    )


POLICIES = [minimum_hosts, anti_affinity, segments_span_hosts, overlay_encrypted, engine_transport]
