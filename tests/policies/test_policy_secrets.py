"""Secrets policies: password length, env/command credentials, secrets in config files."""

from __future__ import annotations

import policy_testkit as kit
import pytest
from medisys_policies.secrets import looks_secret
from policy_testkit import (
    SECRET,
    assert_violation,
    container,
    random_password,
    run_resource,
    with_upload,
)

PASSWORDS = kit.policy_named("secrets-generated-passwords")
ENV = kit.policy_named("secrets-no-plaintext-env")
FILES = kit.policy_named("secrets-not-in-config-files")


def test_long_password_passes() -> None:
    assert run_resource(PASSWORDS, random_password(32), kit.RANDOM_PASSWORD, "db-pw") == []


def test_short_password_fails() -> None:
    found = run_resource(PASSWORDS, random_password(16), kit.RANDOM_PASSWORD, "db-pw")
    message = assert_violation(found, "db-pw", "length 16; the minimum is 24")
    assert message.startswith("RandomPassword 'db-pw'")


def test_password_minimum_comes_from_config() -> None:
    found = run_resource(
        PASSWORDS, random_password(32), kit.RANDOM_PASSWORD, "db-pw", config={"minLength": 40.0}
    )
    assert_violation(found, "db-pw", "minimum is 40")


@pytest.mark.parametrize(
    "name",
    [
        "POSTGRES_PASSWORD",
        "REDIS_PASS",
        "GF_SECURITY_ADMIN_PASSWORD",
        "API_TOKEN",
        "APP_SECRET",
        "AWS_SECRET_ACCESS_KEY",
        "PGBACKREST_REPO1_CIPHER_PASS",
        "DB_CREDENTIALS",
        "SIGNING_KEY",
    ],
)
def test_credential_names_are_recognised(name: str) -> None:
    assert looks_secret(name)


@pytest.mark.parametrize("name", ["BYPASS_CACHE", "TZ", "KEYSPACE_EVENTS", "MEDISYS_ROLE", "PATH"])
def test_ordinary_names_are_not_credentials(name: str) -> None:
    assert not looks_secret(name)


def test_plaintext_password_env_fails_without_echoing_it() -> None:
    props = container("postgres", envs=["TZ=UTC", f"POSTGRES_PASSWORD={SECRET}"])
    message = assert_violation(
        run_resource(ENV, props, name="pg"), "pg", "env POSTGRES_PASSWORD (envs[1])"
    )
    assert "POSTGRES_PASSWORD_FILE" in message
    assert SECRET not in message


def test_file_indirection_passes() -> None:
    props = container("grafana", envs=["GF_SECURITY_ADMIN_PASSWORD__FILE=/run/secrets/grafana"])
    assert run_resource(ENV, props, name="grafana") == []


def test_allowed_names_come_from_config() -> None:
    props = container("redis", envs=["REDIS_TLS_KEY=/etc/redis/tls/redis.key"])
    assert run_resource(ENV, props, name="r1") != []
    config = {"allowedNames": ["REDIS_TLS_KEY"]}
    assert run_resource(ENV, props, name="r1", config=config) == []


def test_password_in_url_fails_without_echoing_it() -> None:
    props = container("app", envs=[f"DATABASE_URL=postgresql://app:{SECRET}@db:5432/medisys"])
    message = assert_violation(run_resource(ENV, props, name="app-1"), "app-1", "password in a URL")
    assert SECRET not in message


@pytest.mark.parametrize(
    "field,value",
    [
        ("command", ["redis-server", "--requirepass", SECRET]),
        ("entrypoints", ["sh", "-c", f"psql 'host=db password={SECRET}'"]),
        ("healthcheck", {"tests": ["CMD", "redis-cli", "--masterauth", SECRET]}),
    ],
)
def test_credentials_on_the_command_line_fail(field: str, value: object) -> None:
    found = run_resource(ENV, container("redis", **{field: value}), name="r1")
    message = assert_violation(found, "r1", "passes a credential on the command line")
    assert SECRET not in message


def test_secret_directives_in_redis_conf_fail() -> None:
    conf = kit.REDIS_CONF + f"requirepass {SECRET}\n"
    props = with_upload(container("redis"), "/etc/redis/redis.conf", conf)
    message = assert_violation(run_resource(FILES, props, name="r1"), "r1", "'requirepass'")
    assert "secret file that redis.conf includes" in message and SECRET not in message


def test_cipher_pass_in_pgbackrest_conf_fails() -> None:
    conf = kit.PGBACKREST_CONF + f"repo1-cipher-pass={SECRET}\n"
    props = with_upload(container("postgres-backup"), "/etc/pgbackrest/pgbackrest.conf", conf)
    message = assert_violation(
        run_resource(FILES, props, name="backup"), "backup", "repo1-cipher-pass"
    )
    assert "/etc/pgbackrest/conf.d/" in message and SECRET not in message


def test_haproxy_insecure_password_fails() -> None:
    cfg = kit.HAPROXY_CFG + f"userlist admins\n    user ops insecure-password {SECRET}\n"
    props = with_upload(container("load-balancer"), "/etc/haproxy/haproxy.cfg", cfg)
    message = assert_violation(run_resource(FILES, props, name="lb"), "lb", "plain-text password")
    assert SECRET not in message


def test_secret_files_are_not_read() -> None:
    # The baseline uploads auth.conf (with requirepass) and conf.d/cipher.conf: both are fine.
    for role in ("redis", "postgres-backup", "postgres"):
        assert run_resource(FILES, container(role), name=role) == []
