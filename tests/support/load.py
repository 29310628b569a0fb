"""A steady load through the load balancer while something changes or fails, and its bill.

Several clients, each on its own keep-alive HTTPS connection (as browsers and API clients keep
theirs), send a mix of writes (POST /api/notes) and reads of their own earlier writes. Every answer
that is not 2xx and every connection error counts as a failed request; every acknowledged write
(201 with an id) is read back once the load stops. Used by the rollout tests, the drills and the
benchmark, so they all count the same way.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import ssl
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPORT_DIR = Path(__file__).resolve().parents[2] / "reports"


def record_figures(table: str, name: str, figures: dict[str, Any]) -> None:
    """One row of a measured table (reports/<table>.json, $MEDISYS_REPORT_DIR), also printed."""
    path = Path(os.environ.get("MEDISYS_REPORT_DIR") or REPORT_DIR) / f"{table}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = json.loads(path.read_text()) if path.exists() else {}
    rows[name] = figures
    path.write_text(json.dumps(rows, indent=2))
    print(f"\n[{table}] {name}: {json.dumps(figures)}")


@dataclass
class LoadReport:
    requests: int
    failed: int
    failures: dict[str, int]
    writes_acknowledged: int
    writes_lost: list[int]
    write_outage_seconds: float  # longest stretch with no acknowledged write
    first_failure_after: float | None
    latency_ms: dict[str, float]
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "failed": self.failed,
            "failures": self.failures,
            "writes_acknowledged": self.writes_acknowledged,
            "writes_lost": len(self.writes_lost),
            "write_outage_s": round(self.write_outage_seconds, 2),
            "latency_ms": self.latency_ms,
            "seconds": round(self.seconds, 1),
        }


@dataclass
class _Client:
    ok_latencies: list[float] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)
    acknowledged: dict[int, str] = field(default_factory=dict)
    write_times: list[float] = field(default_factory=list)
    requests: int = 0
    first_failure: float | None = None


def percentile(values: list[float], share: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


class LoadGenerator:
    """`with LoadGenerator(port, ca_pem) as load: ...change...`; then `load.report()`."""

    def __init__(self, port: int, ca_pem: str, *, clients: int = 4, write_share: float = 0.3,
                 pause_seconds: float = 0.02, timeout: float = 10.0, host: str = "127.0.0.1") -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.context = ssl.create_default_context()
        self.context.load_verify_locations(cadata=ca_pem)
        self.clients = [_Client() for _ in range(clients)]
        self.write_share, self.pause = write_share, pause_seconds
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._started = 0.0
        self._stopped = 0.0

    def __enter__(self) -> LoadGenerator:
        self._started = time.monotonic()
        for index, client in enumerate(self.clients):
            thread = threading.Thread(target=self._run, args=(index, client), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self._stopped:
            return
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self.timeout + 5)
        self._stopped = time.monotonic()

    def _connection(self) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(self.host, self.port, context=self.context, timeout=self.timeout)

    def _request(self, conn: http.client.HTTPSConnection, method: str, path: str, body: dict | None) -> tuple[int, Any]:
        payload = json.dumps(body).encode() if body is not None else None
        conn.request(method, path, body=payload, headers={"Content-Type": "application/json", "Host": "localhost"})
        response = conn.getresponse()
        data = response.read()
        if response.getheader("Connection", "").lower() == "close":
            conn.close()
        try:
            return response.status, json.loads(data) if data else None
        except ValueError:
            return response.status, None

    def _run(self, index: int, client: _Client) -> None:
        rng = random.Random(index)
        conn = self._connection()
        sequence = 0
        while not self._stop.is_set():
            sequence += 1
            writing = not client.acknowledged or rng.random() < self.write_share
            if writing:
                text = f"load-{index}-{sequence}-{time.time_ns()}"
                method, path, body = "POST", "/api/notes", {"body": text}
            else:
                note_id = rng.choice(list(client.acknowledged))
                method, path, body = "GET", f"/api/notes/{note_id}", None
            started = time.monotonic()
            client.requests += 1
            try:
                status, answer = self._request(conn, method, path, body)
            except (OSError, http.client.HTTPException) as error:
                self._fail(client, f"{method} {type(error).__name__}", started)
                conn.close()
                conn = self._connection()
                # A client backs off a little before reconnecting, as real ones do; the count
                # then says how long the outage lasted rather than how fast the loop spun.
                self._stop.wait(0.1)
                continue
            if 200 <= status < 300:
                client.ok_latencies.append((time.monotonic() - started) * 1000)
                if writing and isinstance(answer, dict) and "id" in answer:
                    client.acknowledged[int(answer["id"])] = text
                    client.write_times.append(time.monotonic())
            else:
                self._fail(client, f"{method} {status}", started)
            self._stop.wait(self.pause)
        conn.close()

    def _fail(self, client: _Client, kind: str, at: float) -> None:
        client.failures[kind] = client.failures.get(kind, 0) + 1
        if client.first_failure is None:
            client.first_failure = at

    def lost_writes(self, attempts: int = 10) -> list[int]:
        """Acknowledged writes that cannot be read back (a replica may lag a little: retried)."""
        pending = {i: t for c in self.clients for i, t in c.acknowledged.items()}
        for _ in range(attempts):
            conn = self._connection()
            for note_id, text in list(pending.items()):
                try:
                    status, answer = self._request(conn, "GET", f"/api/notes/{note_id}", None)
                except (OSError, http.client.HTTPException):
                    conn.close()
                    conn = self._connection()
                    continue
                if status == 200 and isinstance(answer, dict) and answer.get("body") == text:
                    del pending[note_id]
            conn.close()
            if not pending:
                break
            time.sleep(1)
        return sorted(pending)

    def report(self, verify_writes: bool = True) -> LoadReport:
        self.stop()
        failures: dict[str, int] = {}
        for client in self.clients:
            for kind, count in client.failures.items():
                failures[kind] = failures.get(kind, 0) + count
        latencies = [v for c in self.clients for v in c.ok_latencies]
        times = sorted([self._started, *(t for c in self.clients for t in c.write_times), self._stopped])
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        firsts = [c.first_failure for c in self.clients if c.first_failure is not None]
        return LoadReport(
            requests=sum(c.requests for c in self.clients),
            failed=sum(failures.values()),
            failures=failures,
            writes_acknowledged=sum(len(c.acknowledged) for c in self.clients),
            writes_lost=self.lost_writes() if verify_writes else [],
            write_outage_seconds=max(gaps, default=0.0),
            first_failure_after=(min(firsts) - self._started) if firsts else None,
            latency_ms={
                "p50": round(statistics.median(latencies), 1) if latencies else 0.0,
                "p95": round(percentile(latencies, 0.95), 1),
                "max": round(max(latencies, default=0.0), 1),
            },
            seconds=self._stopped - self._started,
        )
