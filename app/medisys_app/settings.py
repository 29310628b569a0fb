"""Runtime settings, read from the environment and validated once at start.

Secrets are never taken from environment variables: only the *paths* of the
files holding them are.  A bad value raises SettingsError naming the variable.

HTTPS: APP_TLS_CERT_FILE and APP_TLS_KEY_FILE (PEM) make the server speak TLS 1.2+
only; both or neither must be set (neither: plain HTTP, for local development only).
"""

import os
import re
from dataclasses import dataclass, field

SSL_MODES = ("verify-full", "verify-ca")
# Variables that would put a password into the environment; refused outright.
FORBIDDEN_SECRETS = ("DB_PASSWORD", "PGPASSWORD", "REDIS_PASSWORD")
_HOST_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.\-]*[A-Za-z0-9])?$|^[0-9A-Fa-f:.]+$")
_NAME_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,63}$")


class SettingsError(ValueError):
    def __init__(self, variable, message):
        super().__init__(f"{variable}: {message}")
        self.variable = variable


@dataclass(frozen=True)
class Settings:
    server_name: str
    port: int
    drain_seconds: float
    db_primary_host: str
    db_replica_hosts: tuple
    db_port: int
    db_replica_port: int
    db_name: str
    db_user: str
    db_sslmode: str
    db_sslrootcert: str
    redis_nodes: tuple  # of (host, port)
    redis_username: str
    redis_tls: bool
    redis_ca_file: str
    tls_cert_file: str = ""  # "" (with tls_key_file ""): plain HTTP
    tls_key_file: str = ""
    db_password: str = field(repr=False, default="")
    redis_password: str = field(repr=False, default="")


def _required(env, name):
    value = env.get(name, "").strip()
    if not value:
        raise SettingsError(name, "is required but not set")
    return value


def _port(env, name, default):
    raw = env.get(name, "").strip() or str(default)
    if not raw.isdigit() or not 1 <= int(raw) <= 65535:
        raise SettingsError(name, f"must be a TCP port (1-65535), got {raw!r}")
    return int(raw)


def _host(name, value):
    if not _HOST_RE.match(value):
        raise SettingsError(name, f"not a valid host name or address: {value!r}")
    return value


def _readable_file(env, name):
    path = _required(env, name)
    if not os.path.isfile(path) or not os.access(path, os.R_OK):
        raise SettingsError(name, f"file {path!r} does not exist or is not readable")
    return path


def _secret(env, name):
    path = _readable_file(env, name)
    with open(path, encoding="utf-8") as handle:
        secret = handle.read().rstrip("\r\n")
    if not secret:
        raise SettingsError(name, f"file {path!r} is empty")
    return secret


def _bool(env, name, default):
    raw = env.get(name, "").strip().lower() or default
    if raw in ("true", "1", "yes"):
        return True
    if raw in ("false", "0", "no"):
        return False
    raise SettingsError(name, f"must be true or false, got {raw!r}")


def _tls_pair(env):
    """(certificate, key) paths: both set and readable, or both empty. Half a pair is an error,
    never a silent fall-back to plain HTTP."""
    names = ("APP_TLS_CERT_FILE", "APP_TLS_KEY_FILE")
    given = [env.get(name, "").strip() for name in names]
    if not any(given):
        return "", ""
    for name, other, value in ((names[0], names[1], given[0]), (names[1], names[0], given[1])):
        if not value:
            raise SettingsError(name, f"is required when {other} is set (HTTPS needs both the "
                                "certificate and its private key); set both, or neither for plain HTTP")
    return _readable_file(env, names[0]), _readable_file(env, names[1])


def parse_node(name, item):
    """Parse 'host:port' or '[ipv6]:port' into (host, port)."""
    match = re.match(r"^\[([0-9A-Fa-f:.]+)\]:(\d+)$", item) or re.match(
        r"^([^:\[\]]+):(\d+)$", item
    )
    if not match or not 1 <= int(match.group(2)) <= 65535:
        raise SettingsError(name, f"expected host:port, got {item!r}")
    return _host(name, match.group(1)), int(match.group(2))


def from_env(env=None):
    env = os.environ if env is None else env
    for name in FORBIDDEN_SECRETS:
        if name in env:
            raise SettingsError(name, "secrets must not be passed in the environment; "
                                "use DB_PASSWORD_FILE / REDIS_PASSWORD_FILE")

    server_name = _required(env, "APP_SERVER_NAME")
    if not _NAME_RE.match(server_name):
        raise SettingsError("APP_SERVER_NAME", f"invalid server name {server_name!r}")
    try:
        drain = float(env.get("APP_DRAIN_SECONDS", "").strip() or "3")
    except ValueError:
        drain = -1.0
    if not 0 <= drain <= 300:
        raise SettingsError("APP_DRAIN_SECONDS", "must be a number of seconds (0-300)")

    replicas = tuple(
        _host("DB_REPLICA_HOSTS", h.strip())
        for h in env.get("DB_REPLICA_HOSTS", "").split(",") if h.strip()
    )
    sslmode = env.get("DB_SSLMODE", "").strip() or "verify-full"
    if sslmode not in SSL_MODES:
        raise SettingsError("DB_SSLMODE", f"must be one of {', '.join(SSL_MODES)}, got {sslmode!r}")
    db_name = _required(env, "DB_NAME")
    db_user = _required(env, "DB_USER")
    for name, value in (("DB_NAME", db_name), ("DB_USER", db_user)):
        if not _NAME_RE.match(value):
            raise SettingsError(name, f"invalid identifier {value!r}")

    nodes = tuple(
        parse_node("REDIS_NODES", item.strip())
        for item in _required(env, "REDIS_NODES").split(",") if item.strip()
    )
    if not nodes:
        raise SettingsError("REDIS_NODES", "lists no node")
    redis_tls = _bool(env, "REDIS_TLS", "true")
    tls_cert_file, tls_key_file = _tls_pair(env)

    return Settings(
        server_name=server_name,
        port=_port(env, "APP_PORT", 8080),
        drain_seconds=drain,
        db_primary_host=_host("DB_PRIMARY_HOST", _required(env, "DB_PRIMARY_HOST")),
        db_replica_hosts=replicas,
        db_port=_port(env, "DB_PORT", 5432),
        # Replicas may answer on another port (a read endpoint beside the write one).
        db_replica_port=_port(env, "DB_REPLICA_PORT", _port(env, "DB_PORT", 5432)),
        db_name=db_name,
        db_user=db_user,
        db_sslmode=sslmode,
        db_sslrootcert=_readable_file(env, "DB_SSLROOTCERT"),
        db_password=_secret(env, "DB_PASSWORD_FILE"),
        redis_nodes=nodes,
        redis_username=env.get("REDIS_USERNAME", "").strip() or "default",
        redis_tls=redis_tls,
        redis_ca_file=_readable_file(env, "REDIS_CA_FILE") if redis_tls else "",
        redis_password=_secret(env, "REDIS_PASSWORD_FILE"),
        tls_cert_file=tls_cert_file,
        tls_key_file=tls_key_file,
    )
