"""Stand-in postgresql provider: roles, databases, extensions, schemas, grants and default
privileges, applied with `psql` over the connection its provider settings name (host, port,
username, password, sslmode), as pulumi-postgresql does."""

from __future__ import annotations

import os
import subprocess
import threading
import uuid
from typing import Any

from toolchain.providers.base import ProviderError, ResourceType
from toolchain.providers.postgres_sql import password_change, removal_for, statement_for

# One statement at a time: the engine creates resources in parallel, and concurrent GRANTs on one
# database race on its ACL ("tuple concurrently updated"); pulumi-postgresql serialises them too.
SERIAL = threading.Lock()

TYPES = ("role:Role", "database:Database", "extension:Extension", "schema:Schema", "grant:Grant",
         "defaultPrivileges:DefaultPrivileges")


def run_sql(config: dict[str, Any], database: str, sql: str) -> str:
    missing = [key for key in ("host", "username", "password") if not config.get(key)]
    if missing:
        raise ProviderError(f"the postgresql provider needs {', '.join(missing)}: set them on postgresql.Provider")
    env = {**os.environ, "PGPASSWORD": str(config["password"]), "PGCONNECT_TIMEOUT": str(config.get("connectTimeout", 30)),
           "PGSSLMODE": str(config.get("sslmode", "require"))}
    command = ["psql", "-h", str(config["host"]), "-p", str(config.get("port", 5432)), "-U", str(config["username"]),
               "-d", database, "-v", "ON_ERROR_STOP=1", "-qAt"]
    try:
        with SERIAL:
            result = subprocess.run(command, input=sql, env=env, capture_output=True, text=True, timeout=120)
    except FileNotFoundError as error:
        raise ProviderError("psql is not installed on this machine: run scripts/bootstrap (it installs postgresql-client)") from error
    if result.returncode != 0:
        # The SQL may hold a password: report psql's message, never the statement.
        raise ProviderError(f"psql on {config['host']}:{config.get('port', 5432)}/{database}: {result.stderr.strip()}")
    return result.stdout


class SqlObject(ResourceType):
    def __init__(self, token: str) -> None:
        self.token = token
        # What pulumi-postgresql changes in place; any other change recreates the object.
        self.updatable = {"Role": frozenset({"password"}), "Schema": frozenset({"dropCascade"})}.get(token.split(":")[-1], frozenset())

    def create(self, inputs: dict[str, Any], config: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        statement = statement_for(self.token, inputs)
        if statement is None:
            raise ProviderError(f"{self.token} is not covered by the stand-in postgresql provider")
        run_sql(config, *statement)
        return inputs.get("name") or uuid.uuid4().hex, inputs

    def update(self, resource_id: str, olds: dict[str, Any], news: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
        if olds.get("password") != news.get("password"):
            run_sql(config, *password_change(news))
        return {**olds, **news}

    def delete(self, resource_id: str, state: dict[str, Any], config: dict[str, Any]) -> None:
        removal = removal_for(self.token, state)
        if removal:
            run_sql(config, *removal)


def postgresql_types() -> list[ResourceType]:
    return [SqlObject(f"postgresql:index/{kind}") for kind in TYPES]
