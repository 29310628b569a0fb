"""PostgreSQL and Redis cluster access.

psycopg, psycopg_pool and redis are imported when a backend is built, so the
rest of the package (and its unit tests) works without them.
"""

import itertools
import logging
import threading
import time

log = logging.getLogger("medisys.backends")

# The schema belongs to the migrations (app/migrations, applied by medisys_app.migrate before a
# release rolls out); the app only checks that it is there and which optional columns exist.
SCHEMA_CHECK_SQL = """
SELECT coalesce(bool_or(column_name = 'written_by'), false), count(*) > 0
FROM information_schema.columns WHERE table_schema = 'app' AND table_name = 'notes'"""
CONNECT_TIMEOUT = 3  # seconds, per connection attempt
POOL_TIMEOUT = 5.0  # seconds to wait for a pooled primary connection
REPLICA_POOL_TIMEOUT = 2.0  # shorter: there is a fallback
REPLICA_BACKOFF = 10.0  # seconds a failed replica is skipped by reads


class BackendUnavailable(Exception):
    """A backend could not serve the request; the message is safe to return."""


def first_line(exc):
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


RECONNECT_DELAY = 1.0  # seconds between attempts to reconnect a lost server, never growing


def steady_reconnect(base_module):
    """psycopg_pool retries a lost server with exponential backoff (1, 2, 4, 8, 16 s ...). After a
    database failover (about 20 s without a primary) the next attempt could come 10 s or more
    after the new primary answers. Retry at a steady pace instead: a connection attempt to the
    database endpoint is cheap, and writes resume within a second of the failover."""
    base_module.AttemptWithBackoff.INITIAL_DELAY = RECONNECT_DELAY
    base_module.AttemptWithBackoff.DELAY_BACKOFF = 1.0


class Database:
    def __init__(self, settings):
        import psycopg
        import psycopg_pool.base
        from psycopg_pool import ConnectionPool

        steady_reconnect(psycopg_pool.base)

        self._psycopg = psycopg
        self._settings = settings
        self._rotation = itertools.count()
        self._replica_down_until = {}

        def pool(name, host, port=None):
            p = ConnectionPool(kwargs=self.connect_kwargs(host, port), min_size=1, max_size=4,
                               name=name, timeout=POOL_TIMEOUT, open=False,
                               check=ConnectionPool.check_connection)
            p.open(wait=False)  # connects in the background and keeps retrying
            return p

        self.primary = pool("primary", settings.db_primary_host)
        replica_port = getattr(settings, "db_replica_port", settings.db_port)
        self.replicas = [(h, pool(f"replica-{h}", h, replica_port)) for h in settings.db_replica_hosts]

    def connect_kwargs(self, host, port=None):
        s = self._settings
        return {
            "host": host, "port": port or s.db_port, "dbname": s.db_name, "user": s.db_user,
            "password": s.db_password, "sslmode": s.db_sslmode,
            "sslrootcert": s.db_sslrootcert, "connect_timeout": CONNECT_TIMEOUT,
            "application_name": f"medisys-app/{s.server_name}",
            "options": "-c search_path=app -c statement_timeout=5000",
        }

    def ensure_schema(self):
        with self.primary.connection() as conn:
            has_written_by, has_table = conn.execute(SCHEMA_CHECK_SQL).fetchone()
        if not has_table:
            raise RuntimeError("table app.notes is missing: run the migrations (python3 -m medisys_app.migrate)")
        # Expand/contract: this version fills written_by once migration 0002 has added it and
        # still works against a schema without it (a rollout runs old and new side by side).
        self.writes_written_by = bool(has_written_by)

    def insert_note(self, body):
        try:
            with self.primary.connection() as conn:
                if getattr(self, "writes_written_by", False):
                    row = conn.execute(
                        "INSERT INTO app.notes (body, written_by) VALUES (%s, %s) RETURNING id",
                        (body, self._settings.server_name),
                    ).fetchone()
                else:
                    row = conn.execute(
                        "INSERT INTO app.notes (body) VALUES (%s) RETURNING id", (body,)
                    ).fetchone()
            return row[0]
        except self._psycopg.Error as exc:
            log.warning("insert on primary failed: %s", first_line(exc))
            raise BackendUnavailable("database unavailable") from exc

    def _fetch(self, pool, note_id, timeout):
        with pool.connection(timeout=timeout) as conn:
            row = conn.execute("SELECT body FROM app.notes WHERE id = %s", (note_id,)).fetchone()
        return row[0] if row else None

    def read_note(self, note_id):
        """Return (body, source) or None; replicas first, then the primary.

        A reachable replica that lacks the row may only be lagging behind, so
        the primary is asked too before answering "not found". A replica that
        failed is skipped for REPLICA_BACKOFF seconds so reads stay fast.
        """
        if self.replicas:
            start = next(self._rotation) % len(self.replicas)
            for host, pool in self.replicas[start:] + self.replicas[:start]:
                if self._replica_down_until.get(host, 0.0) > time.monotonic():
                    continue
                try:
                    body = self._fetch(pool, note_id, REPLICA_POOL_TIMEOUT)
                except self._psycopg.Error as exc:
                    log.warning("read on replica %s failed (skipped for %.0f s): %s",
                                host, REPLICA_BACKOFF, first_line(exc))
                    self._replica_down_until[host] = time.monotonic() + REPLICA_BACKOFF
                    continue
                if body is not None:
                    return body, "replica"
                break
        try:
            body = self._fetch(self.primary, note_id, POOL_TIMEOUT)
        except self._psycopg.Error as exc:
            log.warning("read on primary failed: %s", first_line(exc))
            raise BackendUnavailable("database unavailable") from exc
        return (body, "primary") if body is not None else None

    def _probe(self, host, expect_recovery, port=None):
        """Fresh connection (not pooled), so the check sees the real state."""
        result = {"host": host, "ok": False}
        try:
            with self._psycopg.connect(**self.connect_kwargs(host, port)) as conn:
                one, in_recovery = conn.execute("SELECT 1, pg_is_in_recovery()").fetchone()
            result["in_recovery"] = in_recovery
            if one != 1:
                result["error"] = "unexpected answer to SELECT 1"
            elif in_recovery != expect_recovery:
                role = "replica" if expect_recovery else "primary"
                result["error"] = f"configured as {role} but pg_is_in_recovery() = {in_recovery}"
            else:
                result["ok"] = True
        except self._psycopg.Error as exc:
            result["error"] = first_line(exc)
        return result

    def check(self):
        return {
            "primary": self._probe(self._settings.db_primary_host, False),
            "replicas": [self._probe(h, True, getattr(self._settings, "db_replica_port", None)) for h, _ in self.replicas],
        }

    def close(self):
        for pool in [self.primary] + [p for _, p in self.replicas]:
            pool.close(timeout=2)


class Cache:
    """The Redis cluster as an optional cache: any failure of it degrades to the database.

    A lost master costs at most one client timeout per second: one retry after the client re-reads
    the slot map (after a failover it points at the promoted replica), and after a failed call the
    cache is skipped for SKIP_AFTER_FAILURE seconds, so requests never queue behind a dead node.
    """

    SKIP_AFTER_FAILURE = 1.0  # seconds

    def __init__(self, settings, clock=time.monotonic):
        from redis.backoff import NoBackoff
        from redis.cluster import ClusterNode, RedisCluster
        from redis.retry import Retry

        self._cls = RedisCluster
        self._kwargs = {
            "startup_nodes": [ClusterNode(h, p) for h, p in settings.redis_nodes],
            "username": settings.redis_username, "password": settings.redis_password,
            # Redis answers in milliseconds; a node that does not answer within a second is lost.
            "socket_timeout": 1, "socket_connect_timeout": 1, "decode_responses": True,
            "retry": Retry(NoBackoff(), 1),
        }
        if settings.redis_tls:
            self._kwargs.update(ssl=True, ssl_ca_certs=settings.redis_ca_file,
                                ssl_cert_reqs="required", ssl_check_hostname=True)
        self._client = None
        self._lock = threading.Lock()
        self._clock = clock
        self._skip_until = 0.0

    def _cluster(self):
        # Built on first use: the constructor talks to the cluster and fails if
        # it is down; a failed attempt is simply retried on the next call.
        with self._lock:
            if self._client is None:
                self._client = self._cls(**self._kwargs)
            return self._client

    def _call(self, operation):
        if self._clock() < self._skip_until:
            raise BackendUnavailable("redis: skipped for a moment after a failed call")
        try:
            return operation(self._cluster())
        # Not only RedisError: the cluster client can raise others while it re-reads the slot map
        # during a failover, and a cache must never fail a request.
        except Exception as exc:
            self._skip_until = self._clock() + self.SKIP_AFTER_FAILURE
            raise BackendUnavailable(f"redis: {type(exc).__name__}: {first_line(exc)}") from exc

    def get(self, key):
        return self._call(lambda cluster: cluster.get(key))

    def set(self, key, value, ttl):
        self._call(lambda cluster: cluster.set(key, value, ex=ttl))

    def check(self):
        """Return a list of {"node", "role", "ok", ...}; raises BackendUnavailable."""
        try:
            rc = self._cluster()
            nodes = []
            for node in rc.get_nodes():
                entry = {"node": node.name, "role": node.server_type, "ok": False}
                try:
                    entry["ping"] = bool(rc.ping(target_nodes=node))
                    state = rc.cluster_info(target_nodes=node).get("cluster_state")
                    entry["cluster_state"] = state
                    entry["ok"] = entry["ping"] and state == "ok"
                except Exception as exc:  # one node's failure is part of the report
                    entry["error"] = first_line(exc)
                nodes.append(entry)
            return nodes
        except Exception as exc:
            raise BackendUnavailable(f"redis: {first_line(exc)}") from exc

    def close(self):
        with self._lock:
            if self._client is not None:
                self._client.close()
