"""Audit controls (HIPAA 164.312(b)): what the platform records of who reached which service,
when and from where, and that no container's output is thrown away."""

from __future__ import annotations

from typing import Final

from pulumi_policy import Severity

from .access import as_bool
from .framework import Reporter, read_config, resource_policy, schema
from .parsers import HaproxyConfig, HaproxySection, parse_haproxy, parse_postgresql_conf
from .settings import Settings
from .shapes import CONTAINER, HAPROXY_CFG, POSTGRESQL_CONF, Resource

# log_line_prefix escapes: when (%m or %t), who (%u), which database (%d), from where (%h or %r).
_PREFIX_FIELDS: Final = (("when", ("%m", "%t", "%n")), ("who", ("%u",)), ("which database", ("%d",)), ("from where", ("%h", "%r")))


def _postgres_access_log(res: Resource, reporter: Reporter) -> None:
    text = read_config(res, POSTGRESQL_CONF, reporter, "the database access log")
    if text is None:
        return
    conf = parse_postgresql_conf(text)
    for setting in ("log_connections", "log_disconnections"):
        # PostgreSQL 17's log_connections is a boolean (off by default).
        if not as_bool(conf.get(setting, "off")):
            reporter.violation(
                f"postgresql.conf does not set {setting} = on, so who connected to the database "
                "and for how long is not recorded",
                f"set {setting} = on",
            )
    prefix = conf.get("log_line_prefix", "%m [%p] ")  # PostgreSQL's default names no user, database or host
    missing = [f"{what} ({' or '.join(escapes)})" for what, escapes in _PREFIX_FIELDS if not any(e in prefix for e in escapes)]
    if missing:
        reporter.violation(
            f"postgresql.conf log_line_prefix '{prefix}' leaves out {', '.join(missing)}, so a logged "
            "connection or statement cannot be attributed",
            "set log_line_prefix = '%m [%p] %q%u@%d from %h '",
        )


def _defaults_before(config: HaproxyConfig, section: HaproxySection) -> HaproxySection | None:
    found = None
    for candidate in config.sections:
        if candidate is section:
            return found
        if candidate.kind == "defaults":
            found = candidate
    return found


def _logs_requests(section: HaproxySection, defaults: HaproxySection | None) -> bool:
    """The section logs each request: a `log` target of its own or `log global` (its own or
    its defaults', unless it says `no log`), and the request format of its mode."""
    scopes = [s for s in (defaults, section) if s is not None]
    if section.has("no", "log"):
        return False
    target = any(s.directives("log") for s in scopes)
    formatted = any(
        s.has("option", "httplog") or s.has("option", "tcplog") or s.directives("log-format") for s in scopes
    )
    quiet = any(s.has("option", "dontlog-normal") for s in scopes)
    return target and formatted and not quiet


def _haproxy_access_log(res: Resource, reporter: Reporter) -> None:
    if res.role == "load-balancer" and not res.config_file(HAPROXY_CFG).uploaded:
        return  # HAProxy running its edge-config release: the job's upload is judged instead
    text = read_config(res, HAPROXY_CFG, reporter, "the load balancer's access log")
    if text is None:
        return
    config = parse_haproxy(text)
    if not any(s.directives("log") for s in config.of_kind("global")):
        reporter.violation(
            "haproxy.cfg has no `log` target in its global section, so `log global` logs nothing",
            "add 'log stdout format raw local0 info' to the global section",
        )
    for section in config.of_kind("frontend", "listen"):
        if not _logs_requests(section, _defaults_before(config, section)):
            reporter.violation(
                f"haproxy.cfg {section.kind} '{section.name}' does not log each request (client "
                "address, time, status), or drops the successful ones",
                "set 'log global' and 'option httplog' in its defaults (no 'option dontlog-normal')",
            )


@resource_policy(
    "audit-access-logging",
    description="Access is recorded: every container keeps its output (a log driver other than "
    "none), PostgreSQL logs each connection and disconnection with time, user, database and "
    "client address, and HAProxy logs every request.",
    types=[CONTAINER],
    severity=Severity.HIGH,
    config=schema(
        forbiddenLogDrivers={
            "type": "array",
            "items": {"type": "string"},
            "default": ["none"],
            "description": "Docker log drivers that discard a container's output.",
        }
    ),
    remediation="Keep the containers' log driver (json-file with rotation, or a log shipper); in "
    "postgresql.conf set log_connections = on, log_disconnections = on and "
    "log_line_prefix = '%m [%p] %q%u@%d from %h '; in haproxy.cfg log to a global target "
    "with 'log global' and 'option httplog'.",
)
def audit_access_logging(res: Resource, settings: Settings, reporter: Reporter) -> None:
    driver = res.get("logDriver")
    if isinstance(driver, str) and driver in settings.texts("forbiddenLogDrivers"):
        reporter.violation(
            f"log driver '{driver}' discards everything the container prints, its access and audit lines included",
            "use the json-file driver with max-size/max-file rotation (or a log shipper)",
        )
    if res.role == "postgres":
        _postgres_access_log(res, reporter)
    elif res.role in ("load-balancer", "load-balancer-config"):
        _haproxy_access_log(res, reporter)


POLICIES = [audit_access_logging]
