"""Cache tier under failure and change, live, with a steady load through the load balancer:

- a Redis master killed: its replica takes over (cluster ok again within 20 s), no request fails,
  and the old master rejoins as a replica when it is started again;
- a replica killed: the cluster stays ok, no request fails, and it rejoins;
- a change of the nodes' settings through `pulumi up`: one node at a time, the cluster ok
  throughout, no request fails, no write lost (neither the app's nor a key in Redis).

Each prints what it measured (run pytest with -s to see it).
"""

from __future__ import annotations

import datetime
import subprocess
import threading
import time
import uuid

import pytest

from tests.live.conftest import engine_up
from tests.live.probes import docker, exec_in
from tests.live.redis_cluster import Cluster, wait_until
from tests.support.load import LoadGenerator
from tests.support.stack import LIVE_STACK

FAILOVER_BAR_SECONDS = 20
REJOIN_TIMEOUT_SECONDS = 90


@pytest.fixture
def cluster(deployment) -> Cluster:
    cluster = Cluster(deployment)
    wait_until(lambda: len(cluster.pairs()) == 3 and all(cluster.info(n).get("cluster_state") == "ok" for n in cluster.names),
               60, what="a whole cluster (three linked pairs, ok everywhere) before the test")
    return cluster


def load_on(deployment) -> LoadGenerator:
    return LoadGenerator(deployment.https_port, deployment.ca_pem, clients=4)


def app_errors(deployment, since: str) -> list[str]:
    """The app servers' log lines about failed requests and skipped cache calls since `since`."""
    lines = []
    for app in deployment.roles["app"]:
        result = subprocess.run(["docker", "logs", "--since", since, app], capture_output=True, text=True, timeout=60)
        lines += [f"{app}: {line}" for line in (result.stdout + result.stderr).splitlines()
                  if "unhandled" in line or "skipped" in line or " 5" in line.split('"')[-1][:4]]
    return lines


def test_a_killed_master_fails_over_within_20_s_under_load_and_rejoins_as_a_replica(deployment, cluster):
    pairs = cluster.pairs()
    master = sorted(pairs)[0]
    replica = pairs[master]
    since = datetime.datetime.now(datetime.timezone.utc).isoformat()
    with load_on(deployment) as load:
        time.sleep(3)
        killed_at = time.monotonic()
        docker("kill", master)
        # Over once the replica is a master and sees the cluster ok; then every survivor must agree.
        wait_until(lambda: cluster.role_and_state(replica) == ("master", "ok"), 60, interval=0.1,
                   what=f"{replica} promoted with the cluster ok")
        failover_seconds = time.monotonic() - killed_at
        survivors = [n for n in cluster.names if n != master]
        wait_until(lambda: all(cluster.info(n).get("cluster_state") == "ok" for n in survivors), 10,
                   what="the cluster ok on every survivor")
        time.sleep(3)
    report = load.report()
    print(f"\nRedis master {master} killed: {replica} took over, cluster ok {failover_seconds:.1f} s after the kill; "
          f"load: {report.as_dict()}")

    docker("start", master)
    _, rejoin_seconds = wait_until(lambda: cluster.rejoined_as_replica(master), REJOIN_TIMEOUT_SECONDS,
                                   what=f"{master} back as a replica")
    print(f"{master} started again: a linked replica of {replica} after {rejoin_seconds:.1f} s")
    assert cluster.pairs()[replica] == master
    assert failover_seconds <= FAILOVER_BAR_SECONDS
    assert report.failed == 0, (report.failures, app_errors(deployment, since)[:20])
    assert report.writes_lost == []


def test_a_killed_replica_costs_no_request_and_rejoins(deployment, cluster):
    pairs = cluster.pairs()
    master = sorted(pairs)[-1]
    replica = pairs[master]
    states: list[str | None] = []
    since = datetime.datetime.now(datetime.timezone.utc).isoformat()
    with load_on(deployment) as load:
        time.sleep(2)
        docker("kill", replica)
        deadline = time.monotonic() + 15  # past cluster-node-timeout: the replica is flagged failed
        while time.monotonic() < deadline:
            states.append(cluster.state([master]))
            time.sleep(0.5)
    report = load.report()
    print(f"\nRedis replica {replica} killed: cluster states seen by {master} for 15 s: {sorted(set(map(str, states)))}; "
          f"load: {report.as_dict()}")
    docker("start", replica)
    _, rejoin_seconds = wait_until(lambda: cluster.rejoined_as_replica(replica), REJOIN_TIMEOUT_SECONDS,
                                   what=f"{replica} back as a replica")
    print(f"{replica} started again: linked to {master} after {rejoin_seconds:.1f} s")
    assert set(states) == {"ok"}
    assert report.failed == 0, (report.failures, app_errors(deployment, since)[:20])
    assert report.writes_lost == []


class ClusterWatch:
    """Samples, twice a second while `pulumi up` runs, the cluster state as a healthy node sees it,
    which Redis nodes are out (no running container, or a new one whose health check has not passed
    yet) and which running ones report unhealthy (a health check failing or timing out)."""

    def __init__(self, cluster: Cluster, stack: str) -> None:
        self.cluster, self.stack = cluster, stack
        self.samples: list[tuple[float, str | None, list[str], list[str]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _statuses(self) -> dict[str, str] | None:
        result = subprocess.run(["docker", "ps", "--filter", f"label=medisys.stack={self.stack}", "--filter", "label=medisys.role=redis",
                                 "--format", "{{.Names}}|{{.Status}}"], capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            return None  # no answer from the engine: no sample
        return dict(line.split("|", 1) for line in result.stdout.splitlines() if "|" in line)

    def _run(self) -> None:
        while not self._stop.is_set():
            statuses = self._statuses()
            if statuses is not None:
                out = [n for n in self.cluster.names if n not in statuses or "health: starting" in statuses[n]]
                unhealthy = [n for n in self.cluster.names if "(unhealthy)" in statuses.get(n, "")]
                state = self.cluster.state([n for n in self.cluster.names if n not in out and n not in unhealthy])
                self.samples.append((time.monotonic(), state, out, unhealthy))
            self._stop.wait(0.5)

    def __enter__(self) -> ClusterWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)


def rolling_change(deployment, cluster: Cluster, eviction_policy: str) -> dict:
    """`pulumi up` with a new maxmemory-policy for every node, under load and watched."""
    from pulumi import automation as auto

    spans: dict[str, list[float]] = {}

    def on_event(event: auto.EngineEvent) -> None:
        meta = (event.resource_pre_event or event.res_outputs_event)
        if meta is None or meta.metadata.type != "docker:index/container:Container":
            return
        name = meta.metadata.urn.split("::")[-1]
        if name in cluster.names:
            spans.setdefault(name, []).append(time.monotonic())

    with load_on(deployment) as load, ClusterWatch(cluster, LIVE_STACK) as watch:
        started = time.monotonic()
        engine_up(deployment.engine_stack, on_event, redis={"eviction_policy": eviction_policy})
        seconds = time.monotonic() - started
    report = load.report()
    return {"spans": spans, "watch": watch.samples, "load": report, "seconds": seconds}


def test_a_settings_change_rolls_one_node_at_a_time_with_the_cluster_ok_and_no_failed_request(deployment, cluster):
    if deployment.engine_stack is None:
        pytest.skip("a settings change through `pulumi up` needs the Pulumi engine (MEDISYS_DEPLOYER=replay deploys without it)")
    node = cluster.names[0]
    # Keys written straight into the cluster before the change must all be there after it.
    keys = {f"roll:{uuid.uuid4().hex[:12]}": uuid.uuid4().hex for _ in range(60)}
    script = " && ".join(f"redis-cli -c --tls --cacert /etc/redis/tls/ca.crt -h {cluster.address[node]} set {k} {v} >/dev/null"
                         for k, v in keys.items())
    exec_in(node, "sh", "-c", f'export REDISCLI_AUTH=$(sed -n "s/^requirepass //p" /etc/redis/secrets.conf) && {script}')

    for policy in ("allkeys-lfu", "allkeys-lru"):  # the change, then back, each a rolling one
        result = rolling_change(deployment, cluster, policy)
        spans = sorted((min(times), max(times), name) for name, times in result["spans"].items())
        states = [state for _, state, _, _ in result["watch"]]
        most_out = max((len(out) for _, _, out, _ in result["watch"]), default=0)
        unhealthy = sorted({n.rsplit("-", 1)[-1] for _, _, _, names in result["watch"] for n in names})
        report = result["load"]
        print(f"\nRedis maxmemory-policy -> {policy} through `pulumi up`: {result['seconds']:.1f} s, "
              f"{len(spans)} nodes replaced, in order {[name.rsplit('-', 1)[-1] for _, _, name in spans]}; "
              f"{len(states)} samples of cluster_state: {sorted(set(map(str, states)))}; at most {most_out} node(s) "
              f"out at once; running nodes seen unhealthy (a slow health check): {unhealthy}; load: {report.as_dict()}")
        assert len(spans) == len(cluster.names)
        for (_, end, name), (start, _, following) in zip(spans, spans[1:]):
            assert start >= end, f"{following} was touched before {name} was done"
        assert set(states) == {"ok"}
        assert most_out <= 1
        assert report.failed == 0, report.failures
        assert report.writes_lost == []
        for name in cluster.names:
            assert cluster.cli(name, "config", "get", "maxmemory-policy").splitlines() == ["maxmemory-policy", policy]
        assert len(cluster.pairs()) == 3
    lost = [k for k, v in keys.items() if cluster.cli(node, "-c", "get", k) != v]
    assert lost == []
