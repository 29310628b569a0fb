"""Encryption in transit: HAProxy edge, HAProxy to the app servers, PostgreSQL, Redis, and
Grafana's reachability.

HIPAA 164.312(e)(1) transmission security. The checks read the literal config files the
program uploads (see shapes.CONFIG_PATHS), never the TLS keys or certificates.
"""

from __future__ import annotations

import re
from typing import Final

from pulumi_policy import Severity

from .access import as_bool, elements
from .framework import Reporter, read_config, resource_policy, schema
from .parsers import (
    WILDCARD_HOSTS,
    HaproxyConfig,
    HaproxySection,
    bind_host,
    parse_haproxy,
    parse_pg_hba,
    parse_postgresql_conf,
    parse_redis_conf,
)
from .settings import Settings
from .shapes import (
    CONTAINER,
    EDGE_RELEASE_CFG,
    HAPROXY_CFG,
    PG_HBA_CONF,
    POSTGRES_SERVER_ROLES,
    POSTGRESQL_CONF,
    REDIS_CONF,
    Resource,
)

TLS_VERSIONS: Final = ("sslv3", "tlsv1.0", "tlsv1.1", "tlsv1.2", "tlsv1.3")
HBA_TYPES: Final = frozenset(
    {"local", "host", "hostssl", "hostnossl", "hostgssenc", "hostnogssenc"}
)
FORCED_OLD_PROTOCOLS: Final = frozenset({"force-sslv3", "force-tlsv10", "force-tlsv11"})
MIN_TLS_SCHEMA: Final = {
    "type": "string",
    "enum": ["TLSv1.2", "TLSv1.3"],
    "default": "TLSv1.2",
    "description": "Lowest TLS protocol version a server may accept.",
}


def shown_version(version: str | None) -> str:
    """A protocol setting safe to quote in a message (config text is never echoed verbatim)."""
    if version is None:
        return "not set"
    return version if tls_rank(version) >= 0 else "unrecognised"


def tls_rank(version: str | None) -> int:
    """Position of a protocol name in TLS_VERSIONS; -1 when unknown or absent."""
    if version is None:
        return -1
    name = version.strip().lower()
    return TLS_VERSIONS.index(name) if name in TLS_VERSIONS else -1


# --- tls-load-balancer-https-only --------------------------------------------------------------

_HSTS_MAX_AGE: Final = re.compile(r"max-age\s*=\s*(\d+)", re.IGNORECASE)


def _option(words: tuple[str, ...], name: str) -> str | None:
    """Value after `name` in a bind line or an options list (the last occurrence wins)."""
    value = None
    for index, word in enumerate(words[:-1]):
        if word == name:
            value = words[index + 1]
    return value


def _hsts_max_age(section: HaproxySection) -> int | None:
    """max-age of a Strict-Transport-Security response header set in the section."""
    for line in section.lines:
        if (
            len(line) >= 4
            and line[0] == "http-response"
            and line[1] in ("set-header", "add-header")
            and line[2].lower() == "strict-transport-security"
        ):
            match = _HSTS_MAX_AGE.search(" ".join(line[3:]))
            return int(match.group(1)) if match else 0
    return None


def _section_hsts(config: HaproxyConfig, section: HaproxySection) -> int | None:
    """HSTS max-age for traffic through `section`: its own header, or (for a frontend) the
    smallest one over every backend it routes to, if all of them set it."""
    own = _hsts_max_age(section)
    if own is not None or section.kind != "frontend":
        return own
    targets = [
        line[1]
        for line in section.lines
        if line[0] in ("default_backend", "use_backend") and len(line) > 1
    ]
    ages = []
    for target in targets:
        backend = config.named("backend", target)
        age = _hsts_max_age(backend) if backend is not None else None
        if age is None:
            return None
        ages.append(age)
    return min(ages) if ages else None


def _routes_traffic(section: HaproxySection) -> bool:
    """True if the section hands requests to servers rather than answering them itself."""
    for line in section.lines:
        if line[0] in ("default_backend", "use_backend", "server"):
            return True
        if line[:2] == ("http-request", "use-service") and "prometheus-exporter" not in line[2:3]:
            return True
    return False


def _redirects_to_https(section: HaproxySection) -> bool:
    """`[http-request] redirect scheme https`, or a redirect location/prefix to https://."""
    for line in section.lines:
        words = [w.lower() for w in (line[1:] if line[0] == "http-request" else line)]
        if words[:1] != ["redirect"] or len(words) < 3:
            continue
        if words[1] == "scheme" and words[2] == "https":
            return True
        if words[1] in ("location", "prefix") and words[2].startswith("https://"):
            return True
    return False


def _is_stats_only(section: HaproxySection) -> bool:
    serves_stats = (
        section.has("stats", "enable")
        or section.has("stats", "uri")
        or section.has("http-request", "use-service", "prometheus-exporter")
    )
    return serves_stats and not _routes_traffic(section)


def _check_ssl_bind(
    section: HaproxySection,
    bind: tuple[str, ...],
    global_min: str | None,
    minimum: str,
    reporter: Reporter,
) -> None:
    where = f"haproxy.cfg {section.kind} '{section.name}'"
    min_ver = _option(bind, "ssl-min-ver") or global_min
    if tls_rank(min_ver) < tls_rank(minimum):
        reporter.violation(
            f"{where} has an ssl bind that accepts protocols below {minimum} "
            f"(ssl-min-ver is {shown_version(min_ver)})",
            f"add 'ssl-min-ver {minimum}' to every 'bind ... ssl crt ...' line",
        )
    max_ver = _option(bind, "ssl-max-ver")
    forced = sorted(FORCED_OLD_PROTOCOLS.intersection(bind))
    if forced or (max_ver is not None and tls_rank(max_ver) < tls_rank(minimum)):
        reporter.violation(
            f"{where} enables an obsolete protocol on an ssl bind "
            f"({', '.join(forced) or 'ssl-max-ver ' + shown_version(max_ver)})",
            f"remove force-sslv3/force-tlsv10/force-tlsv11 and any ssl-max-ver below {minimum}",
        )


def _check_plain_section(section: HaproxySection, has_ssl: bool, reporter: Reporter) -> None:
    where = f"haproxy.cfg {section.kind} '{section.name}'"
    if section.mode != "http":
        reporter.violation(
            f"{where} accepts plain-text TCP connections (no ssl on its bind)",
            "terminate TLS on that bind ('ssl crt ... ssl-min-ver TLSv1.2') or remove it",
        )
        return
    if _redirects_to_https(section) and (has_ssl or not _routes_traffic(section)):
        return
    if not has_ssl and _is_stats_only(section):
        hosts = [bind_host(b[1]) for b in section.directives("bind") if len(b) > 1]
        if any(host in WILDCARD_HOSTS for host in hosts) or not hosts:
            reporter.violation(
                f"{where} serves stats/metrics over plain HTTP on a wildcard address",
                "bind the stats/prometheus frontend to the load balancer's management "
                "network address only",
            )
        return
    reporter.violation(
        f"{where} serves plain HTTP instead of only redirecting to HTTPS",
        "make the plain-HTTP frontend only redirect ('http-request redirect scheme https' "
        "or a location starting with https://, no backends) and serve the site from the "
        "'bind ... ssl' frontend",
    )


@resource_policy(
    "tls-load-balancer-https-only",
    description="The load balancer serves HTTPS only: TLS >= 1.2 on every ssl bind, plain "
    "HTTP only redirects, and HSTS is set.",
    types=[CONTAINER],
    roles=["load-balancer", "load-balancer-config"],
    severity=Severity.CRITICAL,
    config=schema(
        minTlsVersion=MIN_TLS_SCHEMA,
        minHstsMaxAgeSeconds={
            "type": "integer",
            "minimum": 0,
            "default": 15552000,
            "description": "Smallest Strict-Transport-Security max-age (180 days).",
        },
    ),
    remediation="Render haproxy.cfg with 'bind <ip>:443 ssl crt <pem> ssl-min-ver TLSv1.2', a "
    "port-80 frontend that only does 'http-request redirect scheme https', and "
    "'http-response set-header Strict-Transport-Security \"max-age=63072000\"'.",
)
def load_balancer_https_only(res: Resource, settings: Settings, reporter: Reporter) -> None:
    if res.role == "load-balancer" and not res.config_file(HAPROXY_CFG).uploaded:
        # HAProxy without an uploaded config runs the release its edge-config job installed
        # (that job's haproxy.cfg is judged here too); anything else is an unjudged config.
        command = res.string_list("command")
        if "-f" in command[:-1] and command[command.index("-f") + 1] == EDGE_RELEASE_CFG:
            return
        reporter.violation(
            f"HAProxy reads neither an uploaded {HAPROXY_CFG} nor the edge-config release {EDGE_RELEASE_CFG}, "
            "so HTTPS-only serving cannot be verified",
            f"run it with '-f {EDGE_RELEASE_CFG}' beside a load-balancer-config job that uploads {HAPROXY_CFG}",
        )
        return
    text = read_config(res, HAPROXY_CFG, reporter, "HTTPS-only serving")
    if text is None:
        return
    config = parse_haproxy(text)
    minimum = settings.text("minTlsVersion")
    global_options: tuple[str, ...] = ()
    for section in config.of_kind("global"):
        for line in section.directives("ssl-default-bind-options"):
            global_options += line[1:]
    global_min = _option(global_options, "ssl-min-ver")
    too_low = global_min is not None and tls_rank(global_min) < tls_rank(minimum)
    if too_low or FORCED_OLD_PROTOCOLS.intersection(global_options):
        reporter.violation(
            f"haproxy.cfg global ssl-default-bind-options allow protocols below {minimum}",
            f"set 'ssl-default-bind-options ssl-min-ver {minimum}' and drop force-* options",
        )
    ssl_sections = []
    for section in config.of_kind("frontend", "listen"):
        binds = [b for b in section.directives("bind") if len(b) > 1]
        ssl_binds = [b for b in binds if "ssl" in b[2:]]
        for bind in ssl_binds:
            _check_ssl_bind(section, bind, global_min, minimum, reporter)
        if ssl_binds:
            ssl_sections.append(section)
        if len(ssl_binds) < len(binds):
            _check_plain_section(section, bool(ssl_binds), reporter)
    if not ssl_sections:
        reporter.violation(
            "haproxy.cfg has no frontend that terminates TLS ('bind ... ssl crt ...')",
            "serve the site from a frontend bound with 'ssl crt <pem> ssl-min-ver TLSv1.2'",
        )
    min_age = settings.integer("minHstsMaxAgeSeconds")
    for section in ssl_sections:
        if section.mode != "http":
            continue
        age = _section_hsts(config, section)
        if age is None or age < min_age:
            reporter.violation(
                f"haproxy.cfg {section.kind} '{section.name}' does not send "
                f"Strict-Transport-Security with max-age >= {min_age}",
                "add 'http-response set-header Strict-Transport-Security "
                f'"max-age={max(min_age, 63072000)}"\' to the HTTPS frontend',
            )


# --- tls-app-backend-verified ------------------------------------------------------------------

# What the edge-config job installs (components/container.py ConfigRelease): RELEASE_FILES lists
# "staged-path=name" pairs, each staged path an upload, each name a file of the release dir.
EDGE_RELEASE_DIR: Final = EDGE_RELEASE_CFG.rsplit("/", 1)[0]  # the `current` release HAProxy reads
RELEASE_FILES_ENV: Final = "RELEASE_FILES"
APP_TLS_ENV: Final = ("APP_TLS_CERT_FILE", "APP_TLS_KEY_FILE")
# Options of a `server` line that take a value (so the value is not read as an option itself).
_SERVER_VALUE_OPTIONS: Final = frozenset({
    "verify", "ca-file", "crl-file", "crt", "verifyhost", "sni", "check-sni", "ciphers", "ciphersuites", "ssl-min-ver",
    "ssl-max-ver", "alpn", "check-alpn", "npn", "inter", "fastinter", "downinter", "rise", "fall", "port", "addr", "weight",
    "resolvers", "resolve-prefer", "init-addr", "observe", "error-limit", "on-error", "on-marked-down", "on-marked-up",
    "maxconn", "minconn", "maxqueue", "slowstart", "cookie", "id", "source", "pool-max-conn", "pool-purge-delay",
    "resolve-net", "resolve-opts", "proto", "check-proto", "namespace", "tcp-ut", "agent-port", "agent-inter", "agent-addr",
    "agent-send", "redir", "track", "usesrc", "socks4", "set-proxy-v2-tlv-fmt", "shard", "guid", "hash-key", "log-proto",
    "curves", "sigalgs", "client-sigalgs", "pool-low-conn", "max-reuse", "ws", "init-state",
})


def _server_options(words: tuple[str, ...]) -> dict[str, str | bool]:
    """Flags (True/False for ssl/no-ssl, check-ssl/no-check-ssl) and valued options of one line's
    option words, the last occurrence winning, as HAProxy applies them."""
    options: dict[str, str | bool] = {}
    index = 0
    while index < len(words):
        word = words[index]
        if word in _SERVER_VALUE_OPTIONS and index + 1 < len(words):
            options[word] = words[index + 1]
            index += 2
            continue
        if word.startswith("no-") and word[3:] in ("ssl", "check-ssl", "verifyhost", "sni"):
            options[word[3:]] = False
        else:
            options[word] = True
        index += 1
    return options


def _backend_servers(config: HaproxyConfig) -> list[tuple[HaproxySection, str, dict[str, str | bool]]]:
    """(section, server name, effective options) of every `server`/`server-template` line: the
    preceding `defaults` section's `default-server` options, then the section's, then the line's."""
    found = []
    inherited: dict[str, str | bool] = {}
    for section in config.sections:
        own: dict[str, str | bool] = {}
        for line in section.directives("default-server"):
            own |= _server_options(line[1:])
        if section.kind == "defaults":
            inherited = own
            continue
        if section.kind not in ("backend", "listen"):
            continue
        for line in section.lines:
            if line[0] == "server" and len(line) >= 3:
                found.append((section, line[1], {**inherited, **own, **_server_options(line[3:])}))
            elif line[0] == "server-template" and len(line) >= 4:
                found.append((section, line[1], {**inherited, **own, **_server_options(line[4:])}))
    return found


def _release_files(res: Resource) -> dict[str, str]:
    """Release name -> staged upload path, from the config job's RELEASE_FILES."""
    pairs = (pair.partition("=") for pair in (res.env_value(RELEASE_FILES_ENV) or "").split())
    return {name: staged for staged, sep, name in pairs if sep and staged and name}


def _ships(res: Resource, path: str) -> bool:
    """True if the file at `path` is one the container receives: an upload, or a file of the edge
    release whose staged copy is uploaded."""
    uploads = set(res.upload_paths())
    if path in uploads:
        return True
    prefix = EDGE_RELEASE_DIR + "/"
    if path.startswith(prefix):
        staged = _release_files(res).get(path[len(prefix):])
        return staged is not None and staged in uploads
    return False


def _check_app_backend(res: Resource, settings: Settings, reporter: Reporter) -> None:
    if res.role == "load-balancer" and not res.config_file(HAPROXY_CFG).uploaded:
        # It runs the edge-config release (its job's haproxy.cfg is judged); tls-load-balancer-
        # https-only reports HAProxy running anything else. Only its command line matters here.
        if "-dV" in res.string_list("command"):
            reporter.violation(
                "HAProxy runs with -dV, which turns off the verification of every server certificate",
                "remove -dV from the HAProxy command",
            )
        return
    text = read_config(res, HAPROXY_CFG, reporter, "TLS to the app servers")
    if text is None:
        return
    config = parse_haproxy(text)
    for section in config.of_kind("global"):
        for line in section.directives("ssl-server-verify"):
            if len(line) > 1 and line[1].lower() == "none":
                reporter.violation(
                    "haproxy.cfg global 'ssl-server-verify none' turns off the verification of server certificates",
                    "remove it (HAProxy's default is required) or set 'ssl-server-verify required'",
                )
    servers = _backend_servers(config)
    if not servers:
        reporter.violation(
            "haproxy.cfg has no backend server line, so how it reaches the app servers cannot be verified",
            "declare the app servers in a backend ('server-template app N app:8080 ssl verify required ca-file ...')",
        )
    want_name = settings.flag("requireHostnameVerification")
    for section, server, options in servers:
        where = f"haproxy.cfg {section.kind} '{section.name}' server '{server}'"
        fix_all = "add 'ssl verify required ca-file <the internal CA in the release> verifyhost <the name the app certificates carry>'"
        if options.get("ssl") is not True:
            reporter.violation(f"{where} reaches the app servers in plain text (no 'ssl')", fix_all)
            continue
        verify = options.get("verify")
        if not isinstance(verify, str) or verify.lower() != "required":
            reporter.violation(
                f"{where} does not verify the server certificate ('verify required' is "
                f"{'replaced by verify none' if isinstance(verify, str) else 'missing'})",
                fix_all,
            )
        ca_file = options.get("ca-file")
        if not isinstance(ca_file, str):
            reporter.violation(f"{where} names no ca-file to verify the app servers' certificates with", fix_all)
        elif ca_file.startswith("@"):
            reporter.violation(
                f"{where} trusts a system CA store instead of the internal CA",
                "point ca-file at the internal CA installed with the release",
            )
        elif not _ships(res, ca_file):
            reporter.violation(
                f"{where} names a ca-file that is neither uploaded to this container nor part of the release it installs",
                "upload the internal CA and install it with the release (RELEASE_FILES), and name that path",
            )
        if want_name and not isinstance(options.get("verifyhost"), str) and not isinstance(options.get("sni"), str):
            reporter.violation(
                f"{where} does not check the name in the server certificate (no verifyhost or sni), so any "
                "certificate of the CA is accepted",
                "add 'verifyhost <the name every app certificate carries>' (servers found by DNS send no SNI)",
            )
        if options.get("check-ssl") is False:
            reporter.violation(f"{where} runs its health checks in plain text (no-check-ssl)", "remove no-check-ssl")


def _check_app_server(res: Resource, reporter: Reporter) -> None:
    uploads = set(res.upload_paths())
    for name in APP_TLS_ENV:
        path = res.env_value(name)
        if not path:
            reporter.violation(
                f"the app server runs without {name}, so it serves plain HTTP",
                "give it its own certificate from the internal CA: APP_TLS_CERT_FILE and APP_TLS_KEY_FILE naming "
                "uploaded files (the key as a secret upload)",
            )
        elif path not in uploads:
            reporter.violation(
                f"{name} names a file that is not uploaded to the container, so the certificate it serves is not the program's",
                f"upload the file at the path {name} names",
            )


@resource_policy(
    "tls-app-backend-verified",
    description="No plain-text hop behind the edge: HAProxy reaches the app servers only over TLS with "
    "'ssl verify required', a ca-file it ships and a hostname check, and every app server runs with "
    "its own certificate (APP_TLS_CERT_FILE/APP_TLS_KEY_FILE).",
    types=[CONTAINER],
    roles=["load-balancer", "load-balancer-config", "app"],
    severity=Severity.CRITICAL,
    config=schema(
        requireHostnameVerification={
            "type": "boolean",
            "default": True,
            "description": "Require verifyhost or sni on the backend servers (otherwise any certificate of the CA passes).",
        },
    ),
    remediation="Render the backend as 'server-template app N app:8080 ssl verify required ca-file "
    "/var/lib/haproxy/current/app-ca.crt verifyhost app check-ssl' with the internal CA installed in the edge "
    "release, and give every app server its own certificate (APP_TLS_CERT_FILE, APP_TLS_KEY_FILE).",
)
def app_backend_verified(res: Resource, settings: Settings, reporter: Reporter) -> None:
    if res.role == "app":
        _check_app_server(res, reporter)
    else:
        _check_app_backend(res, settings, reporter)


# --- tls-postgres-ssl-on -----------------------------------------------------------------------


@resource_policy(
    "tls-postgres-ssl-on",
    description="PostgreSQL servers require TLS: ssl = on, a minimum TLS version, and only "
    "'local' and 'hostssl ... scram-sha-256' rules in pg_hba.conf.",
    types=[CONTAINER],
    roles=POSTGRES_SERVER_ROLES,
    severity=Severity.CRITICAL,
    config=schema(
        minTlsVersion=MIN_TLS_SCHEMA,
        allowedHostsslMethods={
            "type": "array",
            "items": {"type": "string"},
            "default": ["scram-sha-256"],
            "description": "Auth methods allowed on hostssl lines.",
        },
        allowedLocalMethods={
            "type": "array",
            "items": {"type": "string"},
            "default": ["peer", "scram-sha-256"],
            "description": "Auth methods allowed on local (Unix socket) lines.",
        },
    ),
    remediation="Set 'ssl = on' and 'ssl_min_protocol_version = 'TLSv1.2'' in postgresql.conf; "
    "use only 'local ... peer' and 'hostssl ... scram-sha-256' lines in pg_hba.conf.",
)
def postgres_ssl_on(res: Resource, settings: Settings, reporter: Reporter) -> None:
    minimum = settings.text("minTlsVersion")
    text = read_config(res, POSTGRESQL_CONF, reporter, "server TLS")
    if text is not None:
        conf = parse_postgresql_conf(text)
        if not as_bool(conf.get("ssl", "off")):
            reporter.violation(
                "postgresql.conf does not set ssl = on",
                "set 'ssl = on' with ssl_cert_file and ssl_key_file",
            )
        # PostgreSQL >= 12 defaults ssl_min_protocol_version to TLSv1.2.
        version = conf.get("ssl_min_protocol_version", "TLSv1.2")
        if tls_rank(version) < tls_rank(minimum):
            reporter.violation(
                f"postgresql.conf allows TLS versions below {minimum} "
                f"(ssl_min_protocol_version is {shown_version(version or None)})",
                f"set ssl_min_protocol_version = '{minimum}'",
            )
    hba_text = read_config(res, PG_HBA_CONF, reporter, "client authentication")
    if hba_text is None:
        return
    hostssl_methods = set(settings.texts("allowedHostsslMethods"))
    local_methods = set(settings.texts("allowedLocalMethods"))
    for rule in parse_pg_hba(hba_text):
        where = f"pg_hba.conf line {rule.line}"
        if rule.conn_type.startswith("include"):
            reporter.violation(
                f"{where} includes another file, whose rules cannot be verified",
                "put every rule in the uploaded pg_hba.conf",
            )
        elif rule.conn_type not in ("local", "hostssl"):
            kind = rule.conn_type if rule.conn_type in HBA_TYPES else "unrecognised"
            reporter.violation(
                f"{where} is a '{kind}' rule, which accepts connections without TLS",
                "use 'hostssl' instead of host/hostnossl/hostgssenc/hostnogssenc",
            )
        elif rule.method == "reject":
            continue
        elif rule.method is None:
            reporter.violation(
                f"{where} has no recognised authentication method",
                "end the rule with an authentication method such as scram-sha-256",
            )
        elif rule.conn_type == "hostssl" and rule.method not in hostssl_methods:
            reporter.violation(
                f"{where} uses '{rule.method}' on a hostssl rule",
                f"use one of: {', '.join(sorted(hostssl_methods))}",
            )
        elif rule.conn_type == "local" and rule.method not in local_methods:
            reporter.violation(
                f"{where} uses '{rule.method}' on a local rule",
                f"use one of: {', '.join(sorted(local_methods))} (never trust)",
            )


# --- tls-redis-clients -------------------------------------------------------------------------


@resource_policy(
    "tls-redis-clients",
    description="Redis accepts TLS only: port 0, a tls-port, a password, TLS for replication and "
    "the cluster bus, and client certificates where requireClientCertificates is set.",
    types=[CONTAINER],
    roles=["redis"],
    severity=Severity.CRITICAL,
    config=schema(
        requireTlsReplication={"type": "boolean", "default": True},
        requireTlsCluster={"type": "boolean", "default": True},
        # Off by default: clients authenticate with the password over a server-verified TLS
        # session. Turn on when every client (apps, exporter, cluster job) has a certificate.
        requireClientCertificates={"type": "boolean", "default": False},
    ),
    remediation="In redis.conf set 'port 0', 'tls-port 6379', a password in the included secrets file, "
    "'tls-replication yes' and 'tls-cluster yes'.",
)
def redis_clients(res: Resource, settings: Settings, reporter: Reporter) -> None:
    text = read_config(res, REDIS_CONF, reporter, "Redis TLS")
    if text is None:
        return
    conf = parse_redis_conf(text)
    if conf.value("port") != "0":
        reporter.violation(
            "redis.conf leaves the plain-text port open ('port 0' is missing)",
            "set 'port 0' so Redis only listens on its tls-port",
        )
    tls_port = conf.value("tls-port") or ""
    if not tls_port.isdigit() or int(tls_port) == 0:
        reporter.violation("redis.conf has no tls-port", "set 'tls-port 6379'")
    # Redis defaults tls-auth-clients to yes; "optional" and "no" accept clients without certs.
    wants_certs = settings.flag("requireClientCertificates")
    if wants_certs and (conf.value("tls-auth-clients") or "yes").lower() != "yes":
        reporter.violation(
            "redis.conf does not require client certificates (tls-auth-clients is not yes)",
            "set 'tls-auth-clients yes'",
        )
    if settings.flag("requireTlsReplication") and conf.value("tls-replication") != "yes":
        reporter.violation("redis.conf replicates without TLS", "set 'tls-replication yes'")
    cluster = (conf.value("cluster-enabled") or "no").lower() == "yes"
    if cluster and settings.flag("requireTlsCluster") and conf.value("tls-cluster") != "yes":
        reporter.violation("redis.conf runs the cluster bus without TLS", "set 'tls-cluster yes'")


# --- tls-grafana-access ------------------------------------------------------------------------


@resource_policy(
    "tls-grafana-access",
    description="Grafana is reachable only through the TLS load balancer: it publishes no "
    "host ports and is attached to the management network only.",
    types=[CONTAINER],
    roles=["grafana"],
    severity=Severity.CRITICAL,
    config=schema(
        managementNetworkSuffix={
            "type": "string",
            "default": "-management",
            "description": "Name suffix of the management network (networksAdvanced[].name).",
        }
    ),
    remediation="Remove Grafana's ports, attach it only to the '<prefix>-management' network, "
    "and route to it through the HTTPS frontend of the load balancer.",
)
def grafana_access(res: Resource, settings: Settings, reporter: Reporter) -> None:
    ports = sum(1 for _ in elements(res.get("ports")))
    if ports or as_bool(res.get("publishAllPorts")):
        reporter.violation(
            f"Grafana publishes {ports or 'all'} port(s) on the host, bypassing the TLS "
            "load balancer",
            "remove `ports` and `publishAllPorts`; reach Grafana through the load balancer",
        )
    suffix = settings.text("managementNetworkSuffix")
    names = res.network_names()
    if not names:
        reporter.violation(
            "Grafana is not attached to the management network (no networksAdvanced)",
            f"attach it to the network whose name ends in '{suffix}' only",
        )
    for name in names:
        if not name.endswith(suffix):
            reporter.violation(
                f"Grafana is attached to network '{name}', outside the management segment",
                f"attach it only to the network whose name ends in '{suffix}'",
            )
    mode = res.get("networkMode")
    if isinstance(mode, str) and mode in ("host", "bridge", "default"):
        reporter.violation(
            f"Grafana uses networkMode '{mode}'",
            "leave networkMode unset and use networksAdvanced with the management network",
        )


POLICIES = [load_balancer_https_only, app_backend_verified, postgres_ssl_on, redis_clients, grafana_access]
