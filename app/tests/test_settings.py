import os
import subprocess
import sys

import pytest

from medisys_app.settings import SettingsError, from_env, parse_node


@pytest.fixture
def env(tmp_path):
    for name, content in (("db.pw", "s3cret\n"), ("redis.pw", "r3dis"), ("ca.pem", "CA")):
        (tmp_path / name).write_text(content)
    return {
        "APP_SERVER_NAME": "dev-app-1",
        "DB_PRIMARY_HOST": "10.0.1.10",
        "DB_REPLICA_HOSTS": "10.0.1.11, db-replica-2.dev.internal",
        "DB_NAME": "medisys",
        "DB_USER": "medisys_app",
        "DB_PASSWORD_FILE": str(tmp_path / "db.pw"),
        "DB_SSLROOTCERT": str(tmp_path / "ca.pem"),
        "REDIS_NODES": "10.0.2.10:6379,10.0.2.11:6380,[fd00::5]:6379",
        "REDIS_PASSWORD_FILE": str(tmp_path / "redis.pw"),
        "REDIS_TLS": "true",
        "REDIS_CA_FILE": str(tmp_path / "ca.pem"),
    }


def test_valid_environment_and_defaults(env):
    s = from_env(env)
    assert s.server_name == "dev-app-1" and s.port == 8080 and s.drain_seconds == 3
    assert s.db_replica_hosts == ("10.0.1.11", "db-replica-2.dev.internal")
    assert s.db_port == 5432 and s.db_sslmode == "verify-full"
    assert s.db_password == "s3cret" and s.redis_password == "r3dis"
    assert s.redis_nodes == (("10.0.2.10", 6379), ("10.0.2.11", 6380), ("fd00::5", 6379))
    assert s.redis_username == "default" and s.redis_tls is True


def test_secrets_are_not_in_repr(env):
    assert "s3cret" not in repr(from_env(env)) and "r3dis" not in repr(from_env(env))


def test_empty_replicas_means_primary_only(env):
    env["DB_REPLICA_HOSTS"] = ""
    assert from_env(env).db_replica_hosts == ()


def test_redis_without_tls_needs_no_ca(env):
    env.update(REDIS_TLS="false", REDIS_CA_FILE="")
    s = from_env(env)
    assert s.redis_tls is False and s.redis_ca_file == ""


@pytest.mark.parametrize("name,value", [
    ("APP_SERVER_NAME", ""),
    ("APP_SERVER_NAME", "bad name!"),
    ("APP_PORT", "http"),
    ("APP_PORT", "70000"),
    ("APP_DRAIN_SECONDS", "soon"),
    ("DB_PRIMARY_HOST", ""),
    ("DB_PRIMARY_HOST", "db;rm -rf"),
    ("DB_REPLICA_HOSTS", "ok-host,bad host"),
    ("DB_PORT", "0"),
    ("DB_NAME", ""),
    ("DB_USER", "x y"),
    ("DB_PASSWORD_FILE", "/nonexistent/pw"),
    ("DB_SSLMODE", "require"),
    ("DB_SSLMODE", "disable"),
    ("DB_SSLROOTCERT", "/nonexistent/ca.pem"),
    ("REDIS_NODES", ""),
    ("REDIS_NODES", "10.0.2.10"),
    ("REDIS_NODES", "10.0.2.10:99999"),
    ("REDIS_PASSWORD_FILE", ""),
    ("REDIS_TLS", "maybe"),
    ("REDIS_CA_FILE", "/nonexistent/ca.pem"),
])
def test_bad_value_names_the_variable(env, name, value):
    env[name] = value
    with pytest.raises(SettingsError) as info:
        from_env(env)
    assert info.value.variable == name
    assert str(info.value).startswith(name + ":")


def test_empty_password_file_is_rejected(env, tmp_path):
    (tmp_path / "empty").write_text("\n")
    env["REDIS_PASSWORD_FILE"] = str(tmp_path / "empty")
    with pytest.raises(SettingsError, match="REDIS_PASSWORD_FILE"):
        from_env(env)


@pytest.mark.parametrize("name", ["DB_PASSWORD", "PGPASSWORD", "REDIS_PASSWORD"])
def test_password_in_environment_is_refused(env, name):
    env[name] = "oops"
    with pytest.raises(SettingsError) as info:
        from_env(env)
    assert info.value.variable == name and "oops" not in str(info.value)


def test_verify_ca_is_allowed(env):
    env["DB_SSLMODE"] = "verify-ca"
    assert from_env(env).db_sslmode == "verify-ca"


def test_parse_node():
    assert parse_node("X", "redis-1:6379") == ("redis-1", 6379)
    assert parse_node("X", "[::1]:7000") == ("::1", 7000)
    with pytest.raises(SettingsError):
        parse_node("X", "redis-1:")


def test_process_exits_2_with_message_naming_variable(env):
    env.pop("DB_NAME")
    app_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run([sys.executable, "-m", "medisys_app"], cwd=app_dir, env=env,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert "DB_NAME" in proc.stderr and "s3cret" not in proc.stderr + proc.stdout
