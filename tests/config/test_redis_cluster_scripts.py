"""The Redis cluster's two scripts (components/templates/form-redis-cluster.sh and redis-node.sh),
run for real in the redis image: eight redis-server processes with the rendered configuration on
loopback addresses 127.0.0.31-38 of one container (no network), each started by `redis-node
serve` as the containers are.

One script, one run (about half a minute), checked step by step: three masters formed; the job run
again changes nothing; three empty nodes added as replicas (replicas_per_master 0 -> 1); the
health check passes on every node; SIGTERM on a master hands its slots to its replica before it
exits and the cluster stays ok; the node started again rejoins as a replica; a node of another
cluster is refused.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import config
from components.redis_cluster import render_redis_conf
from components.templates import TEMPLATE_DIR
from tests.config.conftest import run_in_image, write_tree
from tests.support.mocks import issue_test_certificates

SCRIPT = r"""
set -u
on() { n=$1; shift; redis-cli --tls --cacert /etc/redis/tls/ca.crt -h "127.0.0.$n" -p 6379 "$@" 2>/dev/null | tr -d '\r'; }
export REDISCLI_AUTH=test-password
start() {
    n=$1
    mkdir -p /tmp/n$n
    sed -e "s/^bind .*/bind 127.0.0.$n/" -e "s#^dir .*#dir /tmp/n$n#" \
        -e "s#^cluster-config-file .*#cluster-config-file /tmp/n$n/nodes.conf#" \
        -e "s/^cluster-announce-ip .*/cluster-announce-ip 127.0.0.$n/" \
        -e "s/^replica-announce-ip .*/replica-announce-ip 127.0.0.$n/" /etc/redis/redis.conf > /tmp/n$n/redis.conf
    REDIS_NODE_CONF=/tmp/n$n/redis.conf sh /scripts/redis-node.sh serve >> /tmp/n$n/log 2>&1 &
    echo $! > /tmp/n$n/pid
}
ready() { REDIS_NODE_CONF=/tmp/n$1/redis.conf sh /scripts/redis-node.sh ready; }
wait_ready() { for _ in $(seq 1 100); do ready "$1" && return 0; sleep 0.3; done; return 1; }
# SHARDS as the placement plan writes it: shard s is master .3s with, for one replica, replica .3(s+3).
shards() { if [ "$1" = 0 ]; then echo "$(addr 31 32 33)"; else echo "127.0.0.31:6379,127.0.0.34:6379 127.0.0.32:6379,127.0.0.35:6379 127.0.0.33:6379,127.0.0.36:6379"; fi; }
form() { NODES="$1" SHARDS="$(shards "$2")" MASTERS=3 REPLICAS_PER_MASTER=$2 sh /scripts/form-redis-cluster.sh > /tmp/form.log 2>&1; echo "rc=$?"; cat /tmp/form.log; }
addr() { for n in "$@"; do printf '127.0.0.%s:6379 ' "$n"; done; }

for n in 31 32 33 34 35 36; do start $n; done
for n in 31 32 33 34 35 36; do wait_ready $n || echo "not-ready-alone=$n"; done

echo "== form three masters"; form "$(addr 31 32 33)" 0
echo "== again"; form "$(addr 31 32 33)" 0
echo "== add replicas"; form "$(addr 31 32 33 34 35 36)" 1
echo "known=$(on 31 cluster info | sed -n 's/^cluster_known_nodes://p')"
echo "replicas=$(on 31 cluster nodes | grep -c slave)"
for n in 34 35 36; do echo "replica-of-$n=$(on $n info replication | sed -n 's/^master_host://p')"; done
for n in 31 32 33 34 35 36; do wait_ready $n || echo "not-ready=$n"; done

replica=$(on 31 info replication | sed -n 's/^slave0:ip=\([^,]*\),.*/\1/p')
echo "== SIGTERM master 31"
echo "its-replica=$replica"
on 31 -c set survivor value >/dev/null
kill -TERM "$(cat /tmp/n31/pid)"
states=""
for _ in $(seq 1 100); do
    kill -0 "$(cat /tmp/n31/pid)" 2>/dev/null || break
    states="$states $(on 32 cluster info | sed -n 's/^cluster_state://p')"
    sleep 0.25
done
echo "exited=$(kill -0 "$(cat /tmp/n31/pid)" 2>/dev/null && echo no || echo yes)"
echo "states-during-stop=$states"
echo "state-after=$(on 32 cluster info | sed -n 's/^cluster_state://p')"
echo "new-master-role=$(on "${replica##*.}" role | head -n 1)"
grep redis-node: /tmp/n31/log
start 31
wait_ready 31 && echo "rejoined-role=$(on 31 role | head -n 1)"
echo "survivor=$(on 32 -c get survivor)"

echo "== foreign nodes"
start 37; start 38; wait_ready 37; wait_ready 38
on 37 cluster meet 127.0.0.38 6379 >/dev/null; sleep 1
form "$(addr 31 32 33 34 35 36 37)" 1
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> str:
    tmp: Path = tmp_path_factory.mktemp("redis-scripts")
    cfg = config.load({"environment": "dev"}, "dev")
    certs = issue_test_certificates("redis", ["redis"], [f"127.0.0.{n}" for n in range(31, 39)])
    etc = write_tree(tmp / "etc", {
        "redis.conf": render_redis_conf(cfg.redis, node_name="node", announce_ip="127.0.0.31"),
        "secrets.conf": "requirepass test-password\nmasterauth test-password\n",
        "tls/server.crt": certs["cert"], "tls/server.key": certs["key"], "tls/ca.crt": certs["ca"],
    })
    scripts = write_tree(tmp / "scripts", {
        name: (TEMPLATE_DIR / name).read_text() for name in ("redis-node.sh", "form-redis-cluster.sh")
    })
    secrets = write_tree(tmp / "secrets", {"redis_password": "test-password"})
    result = run_in_image("redis", SCRIPT, {etc: "/etc/redis", scripts: "/scripts", secrets: "/run/secrets"}, timeout=300)
    return result.stdout + result.stderr


def section(output: str, title: str) -> str:
    return output.split(f"== {title}\n", 1)[1].split("\n== ", 1)[0]


def test_every_lone_empty_node_is_ready_for_the_forming_job(run):
    assert "not-ready-alone" not in run, run


def test_the_job_forms_three_masters_and_leaves_them_alone_when_run_again(run):
    assert section(run, "form three masters").startswith("rc=0\n"), run
    assert "cluster formed" in section(run, "form three masters")
    again = section(run, "again")
    assert again.startswith("rc=0\n") and "cluster already formed" in again, run


def test_the_job_adds_empty_nodes_as_replicas_of_a_healthy_cluster(run):
    added = section(run, "add replicas")
    assert added.startswith("rc=0\n") and "replicas added" in added, run
    assert "known=6" in added and "replicas=3" in added, run
    # Each replica follows the master SHARDS pairs it with (the plan keeps them on different hosts).
    assert all(f"replica-of-{r}=127.0.0.{m}" in added for r, m in ((34, 31), (35, 32), (36, 33))), run
    assert "not-ready=" not in added, run


def test_a_master_stopped_with_sigterm_hands_over_first_and_rejoins_as_a_replica(run):
    stop = section(run, "SIGTERM master 31")
    assert "its-replica=127.0.0.3" in stop, run
    assert "exited=yes" in stop, run
    states = stop.split("states-during-stop=", 1)[1].split("\n", 1)[0].split()
    assert states and set(states) == {"ok"}, run
    assert "state-after=ok" in stop and "new-master-role=master" in stop, run
    assert "took over; stopping" in stop, run
    assert "rejoined-role=slave" in stop and "survivor=value" in stop, run


def test_a_node_of_another_cluster_is_refused(run):
    foreign = section(run, "foreign nodes")
    assert foreign.startswith("rc=1\n"), run
    assert "127.0.0.37:6379 is not part of the cluster" in foreign and "repair it by hand" in foreign, run
