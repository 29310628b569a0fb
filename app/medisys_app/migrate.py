"""Versioned schema migrations, run once per release by a one-shot job before app servers roll.

Files NNNN_name.sql in MIGRATIONS_DIR are applied in version order, each in its own transaction
together with its row in app.schema_migrations, under an advisory lock so two jobs never run
at once. An applied migration whose file changed since is an error (history is never
rewritten: add a new migration instead). A failing migration rolls back completely and exits
non-zero, so `pulumi up` stops before any app server is touched.

Usage: python3 -m medisys_app.migrate [--dry-run]
Environment: DB_PRIMARY_HOST, DB_PORT, DB_NAME, DB_USER, DB_PASSWORD_FILE, DB_SSLMODE,
DB_SSLROOTCERT, MIGRATIONS_DIR (default: the migrations shipped in the image).
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DIR = Path(__file__).resolve().parent.parent / "migrations"
FILE_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
# Any constant works; it only has to be the same for every migration job of this database.
LOCK_KEY = 7_301_2026

VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS app.schema_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""


class MigrationError(Exception):
    pass


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover(directory: Path) -> list[Migration]:
    found: dict[int, Migration] = {}
    for path in sorted(directory.iterdir()):
        if path.suffix != ".sql":
            continue
        match = FILE_RE.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: name migrations NNNN_lowercase_name.sql (e.g. 0003_add_index.sql)")
        version = int(match.group(1))
        if version in found:
            raise MigrationError(f"{path.name}: version {version} is also {found[version].name}; give each migration its own number")
        found[version] = Migration(version, match.group(2), path.read_text())
    return [found[v] for v in sorted(found)]


def newer_than_release(migrations: list[Migration], applied: dict[int, tuple[str, str]]) -> list[str]:
    """Applied migrations this release does not ship: a rollback to an earlier release. Allowed,
    because migrations only expand (README "Database migrations"); the job says so in its log."""
    known = {m.version for m in migrations}
    return [f"{v:04d}_{name}" for v, (name, _) in sorted(applied.items()) if v not in known]


def pending(migrations: list[Migration], applied: dict[int, tuple[str, str]]) -> list[Migration]:
    """The migrations still to apply; refuses a history that differs from the files."""
    for migration in migrations:
        if migration.version in applied and applied[migration.version][1] != migration.checksum:
            raise MigrationError(f"{migration.version:04d}_{migration.name}.sql changed after it was applied: "
                                 "restore the applied text and put the change in a new migration")
    return [m for m in migrations if m.version not in applied]


def connect():
    import psycopg

    password = Path(os.environ["DB_PASSWORD_FILE"]).read_text().strip()
    return psycopg.connect(
        host=os.environ["DB_PRIMARY_HOST"], port=int(os.environ.get("DB_PORT", "5432")), dbname=os.environ["DB_NAME"],
        user=os.environ["DB_USER"], password=password, sslmode=os.environ.get("DB_SSLMODE", "verify-full"),
        sslrootcert=os.environ.get("DB_SSLROOTCERT"), connect_timeout=5, application_name="medisys-migrate",
        autocommit=True,
    )


def migrate(conn, migrations: list[Migration], log=print) -> list[Migration]:
    conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
    try:
        conn.execute(VERSION_TABLE)
        rows = conn.execute("SELECT version, name, checksum FROM app.schema_migrations").fetchall()
        history = {v: (n, c) for v, n, c in rows}
        ahead = newer_than_release(migrations, history)
        if ahead:
            log(f"the database is ahead of this release ({', '.join(ahead)} applied by a later one): "
                "running it is a rollback, which expand-only migrations allow")
        todo = pending(migrations, history)
        for migration in todo:
            label = f"{migration.version:04d}_{migration.name}"
            try:
                with conn.transaction():
                    conn.execute(migration.sql)
                    conn.execute("INSERT INTO app.schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                                 (migration.version, migration.name, migration.checksum))
            except Exception as exc:  # the transaction rolled back: report which file and why
                raise MigrationError(f"{label} failed and was rolled back: {str(exc).strip().splitlines()[0]}") from exc
            log(f"applied {label}")
        return todo
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))


def main(argv: list[str]) -> int:
    directory = Path(os.environ.get("MIGRATIONS_DIR") or DEFAULT_DIR)
    try:
        migrations = discover(directory)
        if "--dry-run" in argv:
            for m in migrations:
                print(f"{m.version:04d}_{m.name} {m.checksum[:12]}")
            return 0
        with connect() as conn:
            done = migrate(conn, migrations)
            (latest,) = conn.execute("SELECT coalesce(max(version), 0) FROM app.schema_migrations").fetchone()
        print(f"schema at version {latest:04d}; {len(done)} migration(s) applied by this run")
        return 0
    except MigrationError as exc:
        print(f"migration stopped: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # connection problems and the like: one readable line
        print(f"migration stopped: {type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
