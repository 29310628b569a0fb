"""The SQL that gives each pulumi-postgresql resource this program uses its effect.

Shared by the stand-in postgresql provider (toolchain/providers/postgresql.py) and the replay in
tests/support/replay.py. Names are always double-quoted identifiers, passwords literals.
"""

from __future__ import annotations

from typing import Any


def _quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def statement_for(type_token: str, i: dict[str, Any]) -> tuple[str, str] | None:
    """(database, SQL) that has the effect pulumi-postgresql gives a resource with these inputs."""
    kind = type_token.split(":")[-1]
    if kind == "Role":
        options = "LOGIN" if i.get("login") else "NOLOGIN"
        sql = f'CREATE ROLE "{i["name"]}" {options} PASSWORD {_quote_literal(i["password"])};'
        sql += "".join(f' GRANT "{member}" TO "{i["name"]}";' for member in i.get("roles", []))
        return "postgres", sql
    if kind == "Database":
        return "postgres", f'CREATE DATABASE "{i["name"]}" OWNER "{i.get("owner", "postgres")}";'
    if kind == "Extension":
        return i["database"], f'CREATE EXTENSION IF NOT EXISTS "{i["name"]}";'
    if kind == "Schema":
        return i["database"], f'CREATE SCHEMA "{i["name"]}" AUTHORIZATION "{i["owner"]}";'
    if kind in ("Grant", "DefaultPrivileges"):
        return _privileges(kind, i, "GRANT", "TO")
    return None


def _privileges(kind: str, i: dict[str, Any], verb: str, preposition: str) -> tuple[str, str]:
    """GRANT ... TO or REVOKE ... FROM, on the object (Grant) or as default privileges."""
    privileges = ", ".join(i["privileges"])
    if kind == "Grant":
        target = {"database": f'DATABASE "{i["database"]}"', "schema": f'SCHEMA "{i.get("schema")}"'}[i["objectType"]]
        return i["database"], f'{verb} {privileges} ON {target} {preposition} "{i["role"]}";'
    return i["database"], (
        f'ALTER DEFAULT PRIVILEGES FOR ROLE "{i["owner"]}" IN SCHEMA "{i["schema"]}" '
        f'{verb} {privileges} ON {i["objectType"].upper()}S {preposition} "{i["role"]}";'
    )


def removal_for(type_token: str, i: dict[str, Any]) -> tuple[str, str] | None:
    """(database, SQL) that undoes `statement_for`, for `pulumi destroy` and replacements."""
    kind = type_token.split(":")[-1]
    if kind == "Role":
        return "postgres", f'DROP ROLE IF EXISTS "{i["name"]}";'
    if kind == "Database":
        return "postgres", f'DROP DATABASE IF EXISTS "{i["name"]}" WITH (FORCE);'
    if kind == "Extension":
        return i["database"], f'DROP EXTENSION IF EXISTS "{i["name"]}";'
    if kind == "Schema":
        cascade = " CASCADE" if i.get("dropCascade") else ""
        return i["database"], f'DROP SCHEMA IF EXISTS "{i["name"]}"{cascade};'
    if kind in ("Grant", "DefaultPrivileges"):
        return _privileges(kind, i, "REVOKE", "FROM")
    return None


def password_change(i: dict[str, Any]) -> tuple[str, str]:
    return "postgres", f'ALTER ROLE "{i["name"]}" PASSWORD {_quote_literal(i["password"])};'
