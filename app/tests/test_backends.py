"""Database logic with fake pools: no psycopg or PostgreSQL needed."""

import itertools
import time
import types
from contextlib import contextmanager

import pytest

from medisys_app.backends import BackendUnavailable, Database


class FakeError(Exception):
    pass


class FakeConn:
    def __init__(self, pool):
        self.pool = pool

    def execute(self, sql, params=()):
        self.pool.queries.append(sql)
        if sql.startswith("SELECT 1"):
            return types.SimpleNamespace(fetchone=lambda: (1, self.pool.in_recovery))
        body = self.pool.rows.get(params[0])
        return types.SimpleNamespace(fetchone=lambda: (body,) if body is not None else None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class FakePool:
    def __init__(self, rows=None, up=True, in_recovery=False):
        self.rows, self.up, self.in_recovery, self.queries = rows or {}, up, in_recovery, []

    @contextmanager
    def connection(self, timeout=None):
        if not self.up:
            raise FakeError('connection to server at "10.0.1.11", port 5432 failed: refused\nmore')
        yield FakeConn(self)


def make_db(primary, replicas):
    db = object.__new__(Database)
    db._psycopg = types.SimpleNamespace(Error=FakeError)
    db._rotation = itertools.count()
    db._replica_down_until = {}
    db.primary = primary
    db.replicas = [(f"r{i}", p) for i, p in enumerate(replicas)]
    hosts = {"p": primary, **{f"r{i}": p for i, p in enumerate(replicas)}}
    db._psycopg.connect = lambda host, **_: hosts[host].connection().__enter__()
    db._settings = types.SimpleNamespace(db_primary_host="p", server_name="t", db_port=5432,
                                         db_name="d", db_user="u", db_password="pw",
                                         db_sslmode="verify-full", db_sslrootcert="/ca")
    return db


def test_reads_from_replica_when_present():
    db = make_db(FakePool({1: "a"}), [FakePool({1: "a"}, in_recovery=True)])
    assert db.read_note(1) == ("a", "replica")
    assert db.primary.queries == []


def test_replica_lag_falls_back_to_primary():
    db = make_db(FakePool({1: "a"}), [FakePool({}, in_recovery=True)])
    assert db.read_note(1) == ("a", "primary")
    assert db.read_note(2) is None


def test_unreachable_replica_tries_next_then_primary():
    down, up = FakePool(up=False), FakePool({1: "b"})
    db = make_db(FakePool({1: "b"}), [down, up])
    assert db.read_note(1) == ("b", "replica")
    db = make_db(FakePool({1: "b"}), [FakePool(up=False), FakePool(up=False)])
    assert db.read_note(1) == ("b", "primary")


def test_failed_replica_is_skipped_for_a_while(monkeypatch):
    down = FakePool(up=False)
    calls = []
    original = down.connection
    down.connection = lambda timeout=None: calls.append(1) or original(timeout)
    db = make_db(FakePool({1: "c"}), [down])
    assert db.read_note(1) == ("c", "primary")
    assert db.read_note(1) == ("c", "primary")
    assert len(calls) == 1  # second read did not wait on the dead replica
    clock = time.monotonic() + 11
    monkeypatch.setattr(time, "monotonic", lambda: clock)
    down.up = True
    down.rows = {1: "c"}
    assert db.read_note(1) == ("c", "replica")


def test_replicas_are_rotated():
    r0, r1 = FakePool({1: "x"}), FakePool({1: "x"})
    db = make_db(FakePool(), [r0, r1])
    for _ in range(4):
        db.read_note(1)
    assert len(r0.queries) == 2 and len(r1.queries) == 2


def test_primary_down_is_backend_unavailable():
    db = make_db(FakePool(up=False), [])
    with pytest.raises(BackendUnavailable, match="database unavailable"):
        db.read_note(1)
    with pytest.raises(BackendUnavailable):
        db.insert_note("x")


def test_check_reports_roles_and_first_line_of_errors():
    db = make_db(FakePool(), [FakePool(in_recovery=True), FakePool(up=False)])
    result = db.check()
    assert result["primary"] == {"host": "p", "ok": True, "in_recovery": False}
    assert result["replicas"][0] == {"host": "r0", "ok": True, "in_recovery": True}
    bad = result["replicas"][1]
    assert bad["ok"] is False and bad["error"].endswith("failed: refused")


def test_check_flags_role_mismatch():
    db = make_db(FakePool(in_recovery=True), [FakePool(in_recovery=False)])
    result = db.check()
    assert not result["primary"]["ok"] and "configured as primary" in result["primary"]["error"]
    assert not result["replicas"][0]["ok"]


def test_connect_kwargs_enforce_tls_and_schema():
    kwargs = make_db(FakePool(), []).connect_kwargs("p")
    assert kwargs["sslmode"] == "verify-full" and kwargs["sslrootcert"] == "/ca"
    assert "search_path=app" in kwargs["options"] and kwargs["connect_timeout"] > 0


def test_reconnect_attempts_do_not_back_off_after_a_failover():
    from medisys_app.backends import RECONNECT_DELAY, steady_reconnect

    class Attempt:
        INITIAL_DELAY, DELAY_BACKOFF = 1.0, 2.0

    steady_reconnect(types.SimpleNamespace(AttemptWithBackoff=Attempt))
    assert (Attempt.INITIAL_DELAY, Attempt.DELAY_BACKOFF) == (RECONNECT_DELAY, 1.0)
# --- cache ---------------------------------------------------------------------------------------


class FakeCluster:
    def __init__(self, fail_with=None):
        self.fail_with, self.calls, self.data = fail_with, 0, {}

    def get(self, key):
        self.calls += 1
        if self.fail_with:
            raise self.fail_with
        return self.data.get(key)

    def set(self, key, value, ex=None):
        self.calls += 1
        if self.fail_with:
            raise self.fail_with
        self.data[key] = value


def make_cache(cluster, clock):
    from medisys_app.backends import Cache

    cache = object.__new__(Cache)
    cache._client, cache._lock, cache._clock, cache._skip_until = cluster, __import__("threading").Lock(), clock, 0.0
    return cache


def test_any_cache_failure_is_backend_unavailable_and_skips_the_cache_for_a_moment():
    now = [100.0]
    cluster = FakeCluster(fail_with=KeyError("slot map changed under the client"))
    cache = make_cache(cluster, lambda: now[0])
    with pytest.raises(BackendUnavailable, match="KeyError"):
        cache.get("note:1")
    # Within the pause the dead cluster is not asked again: no request waits for its timeouts.
    with pytest.raises(BackendUnavailable, match="skipped"):
        cache.set("note:1", "x", 60)
    assert cluster.calls == 1
    now[0] += cache.SKIP_AFTER_FAILURE
    cluster.fail_with = None
    cache.set("note:1", "x", 60)
    assert cache.get("note:1") == "x" and cluster.calls == 3
