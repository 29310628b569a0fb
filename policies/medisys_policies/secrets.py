"""Secrets: generated passwords are long enough, and no credential travels as a plain env
var, a command-line argument, a URL or a line in a non-secret config file.

Policies receive secret values in plain text and cannot tell a `pulumi.secret` from a literal,
so these checks look at names and patterns, and every message names the variable, field or
directive, never its value. HIPAA 164.312(a)(1) / (d).
"""

from __future__ import annotations

import re
from typing import Final

from pulumi_policy import Severity

from .access import as_number, as_str, elements
from .framework import Reporter, resource_policy, schema
from .parsers import parse_haproxy, parse_ini, parse_redis_conf
from .settings import Settings
from .shapes import (
    CONTAINER,
    HAPROXY_CFG,
    PGBACKREST_CONF,
    RANDOM_PASSWORD,
    REDIS_CONF,
    Resource,
)


@resource_policy(
    "secrets-generated-passwords",
    description="Generated passwords (random.RandomPassword) are at least minLength characters.",
    types=[RANDOM_PASSWORD],
    severity=Severity.HIGH,
    config=schema(minLength={"type": "integer", "minimum": 8, "default": 24}),
    remediation="Set length to minLength or more on every RandomPassword.",
)
def generated_passwords(res: Resource, settings: Settings, reporter: Reporter) -> None:
    minimum = settings.integer("minLength")
    length = as_number(res.get("length"))
    if length is None or length < minimum:
        reporter.violation(
            f"generates passwords of length {length or 0:g}; the minimum is {minimum}",
            f"set length={minimum} or more",
        )


_SECRET_WORD: Final = re.compile(
    r"PASS\w*|PWD|\w*PASSWORDS?|\w*SECRETS?|\w*TOKENS?|\w*KEYS?|CREDENTIALS?|\w*CREDS?"
)
_URL_CREDENTIALS: Final = re.compile(r"://[^/@:\s]+:[^/@\s]+@")


def looks_secret(name: str) -> bool:
    """Whether an env var name says it holds a credential (PASS, SECRET, TOKEN, KEY, ...)."""
    return any(_SECRET_WORD.fullmatch(word) for word in re.split(r"[_.\-]+", name.upper()) if word)


@resource_policy(
    "secrets-no-plaintext-env",
    description="No credential is passed as an env var value, a URL with a password, or a "
    "command-line argument.",
    types=[CONTAINER],
    severity=Severity.CRITICAL,
    config=schema(
        allowedSuffixes={
            "type": "array",
            "items": {"type": "string"},
            "default": ["_FILE"],
            "description": "Credential-like names allowed when they end with one of these.",
        },
        allowedNames={
            "type": "array",
            "items": {"type": "string"},
            "default": [],
            "description": "Exact env names that look like credentials but are not.",
        },
        forbiddenArguments={
            "type": "array",
            "items": {"type": "string"},
            "default": ["--requirepass", "--masterauth", "password="],
            "description": "Case-insensitive fragments forbidden in command, entrypoints "
            "and healthcheck.tests.",
        },
    ),
    remediation="Upload the secret as a file (mode 0400) and pass its path in an env var "
    "ending in _FILE; keep passwords out of URLs, commands and health checks.",
)
def no_plaintext_env(res: Resource, settings: Settings, reporter: Reporter) -> None:
    suffixes = tuple(settings.texts("allowedSuffixes"))
    allowed = set(settings.texts("allowedNames"))
    for index, entry in res.env_entries():
        name, has_value, value = entry.partition("=")
        name = name.strip()
        if not has_value or name in allowed or name.endswith(suffixes):
            continue
        if looks_secret(name):
            reporter.violation(
                f"env {name} (envs[{index}]) holds a credential in plain text",
                f"upload the secret as a file and pass {name}_FILE=<path> instead",
            )
        elif _URL_CREDENTIALS.search(value):
            reporter.violation(
                f"env {name} (envs[{index}]) embeds a password in a URL",
                "drop the password from the URL and give the client a password file "
                "(e.g. PGPASSFILE) or a *_FILE variable",
            )
    fragments = [f.lower() for f in settings.texts("forbiddenArguments")]
    for field in (("command",), ("entrypoints",), ("healthcheck", "tests")):
        for index, argument in elements(res.get(*field)):
            text = (as_str(argument) or "").lower()
            for fragment in fragments:
                if fragment in text:
                    reporter.violation(
                        f"{'.'.join(field)}[{index}] passes a credential on the command "
                        f"line ('{fragment}')",
                        "read the secret from a file (e.g. redis 'include' of a secret conf, "
                        "PGPASSFILE) instead of an argument",
                    )


_PGBACKREST_SECRET_KEYS: Final = [
    "cipher-pass",
    "s3-key",
    "s3-key-secret",
    "s3-token",
    "azure-key",
    "sftp-private-key-passphrase",
]


@resource_policy(
    "secrets-not-in-config-files",
    description="Non-secret config files (redis.conf, pgbackrest.conf, haproxy.cfg) hold no "
    "credentials; those go in separate secret files.",
    types=[CONTAINER],
    severity=Severity.CRITICAL,
    config=schema(
        forbiddenRedisDirectives={
            "type": "array",
            "items": {"type": "string"},
            "default": ["requirepass", "masterauth"],
        },
        forbiddenPgbackrestKeys={
            "type": "array",
            "items": {"type": "string"},
            "default": _PGBACKREST_SECRET_KEYS,
            "description": "Option names (without the repoN- prefix) that hold secrets.",
        },
    ),
    remediation="Move requirepass/masterauth into the included secret redis file and "
    "repo1-cipher-pass into /etc/pgbackrest/conf.d/; use password hashes in haproxy userlists.",
)
def not_in_config_files(res: Resource, settings: Settings, reporter: Reporter) -> None:
    uploads = res.upload_paths()
    if REDIS_CONF in uploads:
        text = res.config_file(REDIS_CONF).text or ""
        conf = parse_redis_conf(text)
        for directive in settings.texts("forbiddenRedisDirectives"):
            if conf.has(directive.lower()):
                reporter.violation(
                    f"redis.conf contains the secret directive '{directive}'",
                    f"move '{directive}' into the secret file that redis.conf includes",
                )
    if PGBACKREST_CONF in uploads:
        ini = parse_ini(res.config_file(PGBACKREST_CONF).text or "")
        secret_keys = {k.lower() for k in settings.texts("forbiddenPgbackrestKeys")}
        for section, key in ini.options():
            if re.sub(r"^repo\d+-", "", key) in secret_keys:
                reporter.violation(
                    f"pgbackrest.conf [{section}] contains the secret option '{key}'",
                    f"move '{key}' into a secret file under /etc/pgbackrest/conf.d/",
                )
    if HAPROXY_CFG in uploads:
        config = parse_haproxy(res.config_file(HAPROXY_CFG).text or "")
        for userlist in config.of_kind("userlist"):
            for line in userlist.directives("user"):
                if "insecure-password" in line:
                    reporter.violation(
                        f"haproxy.cfg userlist '{userlist.name}' stores a plain-text password",
                        "use 'password <crypt hash>' or move the userlist to a secret file",
                    )


POLICIES = [generated_passwords, no_plaintext_env, not_in_config_files]
