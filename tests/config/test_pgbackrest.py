"""pgBackRest on the files the program renders, inside medisys/postgres: the repository host's and
a member's pgbackrest.conf as pgBackRest itself parses them, and the repository host reaching
members over TLS with the certificates, keys and entrypoint the program deploys.

The second part records the dev topology under the unit-test mocks (real certificates from a real
CA), copies the uploads of the backup agent, two members and the SFTP server into containers on
two test networks at their planned addresses, runs the agent's entrypoint and the members' TLS
servers, and checks what must hold and what must be refused.
"""

from __future__ import annotations

import random
import io
import secrets
import subprocess
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import config
from components.backups import (
    OffsiteEndpoint,
    PgServer,
    RepositoryHost,
    render_member_conf,
    render_offsite_conf,
    render_repository_conf,
)
from tests.config.conftest import image, run_in_image, write_tree
from tests.support.mocks import issue_test_certificates, record

CFG = config.load({"environment": "dev"}, "dev")
MEMBERS = [PgServer(f"medisys-dev-pg-{i}", f"10.0.2.{9 + i}", f"/var/lib/postgresql/members/{i}/pgdata") for i in (1, 2)]
AGENT = RepositoryHost("medisys-dev-backup-agent", "10.0.2.40")
OFFSITE = OffsiteEndpoint("10.0.4.50", 2222, "pgbackrest", "/srv/pgbackrest")
HELP = "pgbackrest --config=/etc/pgbackrest/pgbackrest.conf --config-include-path=/etc/pgbackrest/conf.d --log-level-console=warn"


def repository_conf() -> str:
    return render_repository_conf(CFG.backups, AGENT.address, MEMBERS, OFFSITE)


def member_conf() -> str:
    return render_member_conf(MEMBERS[0], AGENT, "/var/run/postgresql")


def help_of(tmp_path: Path, name: str, conf: str, *questions: str, conf_d: dict[str, str] | None = None) -> list[str]:
    """pgBackRest's `help COMMAND OPTION` for each question, on this configuration (no network)."""
    root = write_tree(tmp_path / name, {"pgbackrest.conf": conf, **{f"conf.d/{k}": v for k, v in (conf_d or {}).items()}})
    (root / "conf.d").mkdir(mode=0o755, exist_ok=True)  # pgBackRest reads the include path; a member has nothing in it
    marker = "=====ANSWER====="
    # The stanza's section is read for every command but the server, which takes no stanza.
    script = " ; ".join(f"echo {marker}; {HELP}{'' if q.startswith('server') else ' --stanza=main'} help {q} 2>&1" for q in questions)
    result = run_in_image("postgres", script, {root: "/etc/pgbackrest"})
    return result.stdout.split(marker + "\n")[1:]


AGENT_CONF_D = {"cipher.conf": "[global]\nrepo1-cipher-pass=x\n", "offsite.conf": render_offsite_conf("y", "0" * 64)}


def test_pgbackrest_reads_the_repository_hosts_configuration(tmp_path):
    answers = help_of(
        tmp_path, "agent", repository_conf(),
        "backup pg2-host-type", "backup pg2-host", "backup pg1-path", "backup pg1-host-ca-file", "server tls-server-auth",
        "server tls-server-address", "backup repo2-sftp-host-key-check-type", "backup repo1-cipher-type",
        conf_d=AGENT_CONF_D,
    )
    assert "current: tls" in answers[0], answers[0]  # one value for every index
    assert "pg1: 10.0.2.10\n  pg2: 10.0.2.11" in answers[1], answers[1]
    assert "pg1: /var/lib/postgresql/members/1/pgdata\n  pg2: /var/lib/postgresql/members/2/pgdata" in answers[2]
    assert "current: /etc/pgbackrest/tls/ca.crt" in answers[3]
    # Both members' client names, each for the stanza only.
    assert "current: medisys-dev-pg-1-backup-client=main, medisys-dev-pg-2-backup-client=main" in answers[4], answers[4]
    assert "current: 10.0.2.40" in answers[5]
    assert "repo2: fingerprint" in answers[6]
    assert "current: aes-256-cbc" in answers[7]


def test_pgbackrest_reads_a_members_configuration_with_both_repositories_on_the_repository_host(tmp_path):
    answers = help_of(
        tmp_path, "member", member_conf(),
        "archive-push repo1-host-type", "archive-push repo2-host", "archive-push repo1-cipher-type", "server tls-server-auth",
        "archive-push archive-async", "archive-push io-timeout", "archive-get archive-async", "archive-push pg1-path",
    )
    assert "current: tls" in answers[0], answers[0]
    assert "current: 10.0.2.40" in answers[1]
    # No cipher here: pgBackRest takes repo1's from the repository host.
    assert "current:" not in answers[2], answers[2]
    assert "current: medisys-dev-backup-agent-client=main" in answers[3]
    # Asynchronous archive-push (an unreachable offsite server does not hold back the local
    # repository), archive-get as before.
    assert "current: true" in answers[4] and "current: 15" in answers[5]
    assert "current:" not in answers[6]
    assert "current: /var/lib/postgresql/members/1/pgdata" in answers[7]


@pytest.mark.parametrize(
    ("which", "change"),
    [
        ("agent", ("pg1-host-type=tls", "pg1-host-typ=tls")),
        ("agent", ("pg2-host-type=tls", "pg2-host-type=tcp")),
        ("member", ("repo1-host-type=tls", "repo1-host-type=http")),
        ("member", ("tls-server-address=", "tls-server-adress=")),
        ("agent", ("repo2-sftp-host-port=", "repo2-sftp-port=")),
    ],
)
def test_pgbackrest_refuses_a_misspelt_option_or_an_unknown_value(tmp_path, which, change):
    conf = (repository_conf() if which == "agent" else member_conf()).replace(*change)
    (answer,) = help_of(tmp_path, which, conf, "backup pg1-host" if which == "agent" else "archive-push repo1-host", conf_d=AGENT_CONF_D)
    assert "invalid option" in answer or "is not allowed" in answer or "invalid value" in answer, answer


# --- the repository host and the members over TLS, with what the program deploys ------------------


@dataclass
class Bench:
    prefix: str
    networks: dict[str, str]  # segment -> network name
    uploads: dict[str, dict[str, str]]  # role/name -> {path: content}
    agent: str
    members: list[str]
    addresses: dict[str, str]  # container -> database address


def docker(*args: str, check: bool = True, timeout: int = 120) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args[:6])}: {result.stdout[-1500:]}{result.stderr[-1500:]}")
    return result


def copy_uploads(container: str, uploads: dict[str, str]) -> None:
    """The files at their paths as the docker provider uploads them: a tar of file entries only
    (missing folders are made, existing ones keep their owner and mode), root's, mode 0644."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path, content in uploads.items():
            data = content.encode()
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
            tar.addfile(info, io.BytesIO(data))
    result = subprocess.run(["docker", "cp", "-", f"{container}:/"], input=buffer.getvalue(), capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr.decode()


MEMBER_SCRIPT = """
set -euo pipefail
# The member's TLS server, as the entrypoint starts it beside Patroni.
source /usr/local/bin/medisys-postgres-entrypoint
start_tls_server
if [ "$RUN_POSTGRES" = yes ]; then
    install_private_key
    initdb -D "$DATA" -U postgres --data-checksums --auth-local=peer --auth-host=scram-sha-256 >/dev/null
    pg_ctl -D "$DATA" -w -l /tmp/postgres.log -o "-c config_file=/etc/postgresql/postgresql.conf -c listen_addresses=$ADDRESS \\
        -c unix_socket_directories=/var/run/postgresql" start >/dev/null || { cat /tmp/postgres.log; exit 1; }
fi
echo member-ready
sleep infinity
"""


@pytest.fixture(scope="module")
def bench() -> Iterator[Bench]:
    prefix = f"medisys-pgbrtls-{secrets.token_hex(3)}"
    networks: dict[str, str] = {}
    subnets: dict[str, str] = {}
    started: list[str] = []
    try:
        for segment in ("database", "offsite"):
            for _ in range(30):  # a subnet no other network uses
                subnet = f"10.254.{random.randint(0, 255)}.0/24"
                name = f"{prefix}-{segment}"
                if docker("network", "create", "--internal", "--subnet", subnet, name, check=False).returncode == 0:
                    networks[segment], subnets[segment] = name, subnet
                    break
            else:
                pytest.fail("no free 10.254.x.0/24 subnet for the test networks")
        cfg = config.load({"environment": "dev", "name_prefix": prefix, "networks": subnets}, "dev")
        from topology import build_topology

        mocks = record(lambda: build_topology(cfg, None))
        by_role: dict[str, list] = {}
        for resource in mocks.of_type("docker:index/container:Container"):
            labels = {item["label"]: item["value"] for item in resource.inputs.get("labels", [])}
            by_role.setdefault(labels["medisys.role"], []).append(resource)
        uploads = {r.inputs["name"]: {u["file"]: u["content"] for u in r.inputs.get("uploads", [])}
                   for role in ("postgres", "postgres-backup", "offsite-sftp") for r in by_role[role]}
        addresses = {}
        segment_of = {subnet.rsplit(".", 1)[0]: segment for segment, subnet in subnets.items()}

        def create(resource, command: list[str], env: list[str], aliases: dict[str, list[str]] | None = None) -> str:
            name = resource.inputs["name"]
            attachments = [(segment_of[n["ipv4Address"].rsplit(".", 1)[0]], n["ipv4Address"]) for n in resource.inputs["networksAdvanced"]
                           if n["ipv4Address"].rsplit(".", 1)[0] in segment_of]
            first, *more = attachments
            docker("create", "--name", name, "--network", networks[first[0]], "--ip", first[1], "--user", resource.inputs["user"],
                   *[a for e in env for a in ("-e", e)], *[a for x in (aliases or {}).get(first[0], []) for a in ("--network-alias", x)],
                   *command[:1], image_of(resource), *command[1:])
            started.append(name)
            for segment, address in more:
                docker("network", "connect", "--ip", address, networks[segment], name)
            addresses[name] = dict(attachments).get("database", "")
            copy_uploads(name, uploads[name])
            return name

        def image_of(resource) -> str:
            return image(resource.inputs["image"].split("/", 1)[1].split(":", 1)[0])

        (sftp,) = by_role["offsite-sftp"]
        docker("start", create(sftp, [], []))
        members = []
        for index, member in enumerate(sorted(by_role["postgres"], key=lambda r: r.inputs["name"]), start=1):
            data = f"/var/lib/postgresql/members/{index}/pgdata"
            address = next(n["ipv4Address"] for n in member.inputs["networksAdvanced"])
            # The second member runs its TLS server only: a member whose PostgreSQL is down.
            env = ["PG_ROLE=member", f"DATA={data}", f"ADDRESS={address}", f"RUN_POSTGRES={'yes' if index == 1 else 'no'}"]
            name = create(member, ["--entrypoint=bash", "-c", MEMBER_SCRIPT], env,
                          aliases={"database": [f"impostor-{index}"]})
            docker("start", name)
            members.append(name)
        for name in members:
            wait_for(lambda n=name: "member-ready" in docker("logs", n, check=False).stdout, 120, f"{name} ready")
        (agent,) = by_role["postgres-backup"]
        agent_name = create(agent, [], list(agent.inputs["envs"]))
        docker("start", agent_name)
        yield Bench(prefix, networks, uploads, agent_name, members, addresses)
    finally:
        for name in started:
            docker("rm", "-f", name, check=False)
        for name in networks.values():
            docker("network", "rm", name, check=False)


def wait_for(probe, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(1)


def agent_exec(bench: Bench, *command: str, check: bool = False, timeout: int = 180) -> subprocess.CompletedProcess[str]:
    return docker("exec", bench.agent, *command, check=check, timeout=timeout)


def healthy(bench: Bench) -> bool:
    return docker("exec", bench.agent, "test", "-f", "/var/lib/medisys-backup/healthy", check=False).returncode == 0


def test_the_agent_checks_the_primary_over_tls_and_the_wal_reaches_both_repositories(bench):
    # The entrypoint's first `check` switches a WAL segment on the primary and waits until it is in
    # repo1 and repo2: pushed by the member through the agent's TLS server, repo2 over SFTP.
    wait_for(lambda: healthy(bench) or docker("inspect", "-f", "{{.State.Running}}", bench.agent).stdout.strip() != "true", 240,
             "the agent's first check")
    assert healthy(bench), docker("logs", bench.agent, check=False).stdout[-3000:]
    result = agent_exec(bench, "pgbackrest", "--stanza=main", "--output=json", "info", check=True)
    assert '"status":{"code":0' in result.stdout.replace(" ", "") or "archive" in result.stdout
    for repo in ("1", "2"):
        archived = agent_exec(bench, "pgbackrest", "--stanza=main", f"--repo={repo}", "repo-ls", "archive/main", check=True)
        assert "17-1" in archived.stdout, (repo, archived.stdout)
    assert agent_exec(bench, "medisys-postgres-health").returncode == 0


def test_a_member_holds_no_repository_and_no_cipher_pass(bench):
    member = bench.members[0]
    conf = bench.uploads[member]["/etc/pgbackrest/pgbackrest.conf"]
    assert "repo1-cipher" not in conf and "repo1-path" not in conf
    assert not [p for p in bench.uploads[member] if p.startswith("/etc/pgbackrest/conf.d/")]
    # The member reads the repository through the agent: info works there with no cipher pass of its own.
    info = docker("exec", member, "pgbackrest", "--stanza=main", "--repo=1", "info", check=False)
    assert info.returncode == 0 and "cipher: aes-256-cbc" in info.stdout, info.stdout + info.stderr


def test_a_member_refuses_a_client_certificate_it_does_not_authorize(bench):
    # The other member's client certificate: same CA, a CN the member does not let in.
    other = bench.uploads[bench.members[1]]
    copy_uploads(bench.agent, {"/tmp/other/client.crt": other["/etc/pgbackrest/tls/client.crt"],
                               "/tmp/other/client.key": other["/etc/pgbackrest/tls/client.key"]})
    agent_exec(bench, "sh", "-c", "cp -r /tmp/other /tmp/k && chmod 600 /tmp/k/client.key", check=True)
    result = agent_exec(bench, "pgbackrest", "--stanza=main", "--pg1-host-cert-file=/tmp/k/client.crt", "--pg1-host-key-file=/tmp/k/client.key",
                        "--io-timeout=5", "check")
    assert result.returncode != 0
    assert "access denied" in result.stdout + result.stderr, result.stdout + result.stderr


def test_a_client_certificate_of_another_ca_is_refused(bench):
    stranger = issue_test_certificates("medisys-dev-backup-agent-client", [], [])
    copy_uploads(bench.agent, {"/tmp/stranger/client.crt": stranger["cert"], "/tmp/stranger/client.key": stranger["key"]})
    agent_exec(bench, "sh", "-c", "cp -r /tmp/stranger /tmp/s && chmod 600 /tmp/s/client.key", check=True)
    result = agent_exec(bench, "pgbackrest", "--stanza=main", "--pg1-host-cert-file=/tmp/s/client.crt", "--pg1-host-key-file=/tmp/s/client.key",
                        "--io-timeout=5", "check")
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "access denied" in output or "certificate" in output or "TLS" in output, output


def test_the_agent_refuses_a_member_whose_certificate_does_not_name_the_address_it_reached(bench):
    # The member answers under another name too (a network alias its certificate does not carry).
    result = agent_exec(bench, "pgbackrest", "--stanza=main", "--pg1-host=impostor-1", "--io-timeout=5", "check")
    assert result.returncode != 0
    assert "unable to find hostname 'impostor-1' in certificate" in result.stdout + result.stderr, result.stdout + result.stderr


def test_the_tls_server_is_started_again_when_it_dies_and_the_health_check_sees_it(bench):
    member = bench.members[1]
    docker("exec", member, "pkill", "-x", "pgbackrest", check=True)
    # The supervisor starts it again a second later; health answers again within a few seconds.
    wait_for(lambda: "starting it again" in docker("logs", member, check=False).stdout + docker("logs", member, check=False).stderr, 20,
             "the supervisor's restart")
    wait_for(lambda: docker("exec", member, "pgbackrest", "server-ping", "--io-timeout=1", check=False).returncode == 0, 20,
             "the TLS server answering again")
