"""Backup policies: schedule, retention, encryption, offsite repository, WAL archiving, Redis persistence."""

from __future__ import annotations

import policy_testkit as kit
from policy_testkit import (
    assert_violation,
    baseline_stack,
    container,
    replace,
    run_resource,
    run_stack,
    with_upload,
    without,
)

SCHEDULE = kit.policy_named("backup-schedule-present")
RETENTION = kit.policy_named("backup-retention-minimum")
ENCRYPTED = kit.policy_named("backup-repository-encrypted")
WAL = kit.policy_named("backup-wal-archiving")
REDIS = kit.policy_named("backup-redis-persistence")
OFFSITE = kit.policy_named("backup-offsite-repository")
PGBACKREST = "/etc/pgbackrest/pgbackrest.conf"
PG_CONF = "/etc/postgresql/postgresql.conf"


def messages(found: list[tuple[str, str | None]]) -> list[str]:
    return [message for message, _ in found]


# --- schedule (stack) --------------------------------------------------------------------------


def test_stack_with_backup_container_passes() -> None:
    assert run_stack(SCHEDULE, baseline_stack()) == []


def test_cluster_without_backup_container_fails() -> None:
    found = run_stack(SCHEDULE, without(baseline_stack(), "postgres-backup"))
    # One violation for the cluster (its members share a component), pointed at a member.
    message = assert_violation(messages(found), "pg-1", "no postgres-backup")
    assert found[0][1] == kit.urn(kit.CONTAINER, "pg-1")
    assert "add a pgBackRest backup agent" in message


def test_backup_agent_of_its_own_component_counts_for_that_cluster_only() -> None:
    # The program labels the agent with the backups component, not the database's: one
    # agent still covers one cluster (of two members), but not two clusters.
    second = container("postgres", "pg-two")
    second["labels"] = [*second["labels"][:2], {"label": "medisys.component", "value": "pg2"}]
    backup = container("postgres-backup")
    backup["labels"] = [*backup["labels"][:2], {"label": "medisys.component", "value": "backups"}]
    stack = replace(baseline_stack(), "postgres-backup", labels=backup["labels"])
    assert run_stack(SCHEDULE, stack) == []
    found = run_stack(SCHEDULE, [*stack, (kit.CONTAINER, "pg-two", second)])
    assert len(found) == 1
    assert "no postgres-backup" in found[0][0]


def test_missing_schedule_fails() -> None:
    stack = replace(baseline_stack(), "postgres-backup", envs=["TZ=UTC"])
    found = run_stack(SCHEDULE, stack)
    message = assert_violation(messages(found), "postgres-backup", "BACKUP_FULL_INTERVAL_HOURS")
    assert "from 1 to 24" in message


def test_schedule_longer_than_limit_fails() -> None:
    stack = replace(baseline_stack(), "postgres-backup", envs=["BACKUP_FULL_INTERVAL_HOURS=48"])
    found = run_stack(SCHEDULE, stack)
    assert_violation(messages(found), "postgres-backup", "every 48 hours", "limit is 24")
    relaxed = run_stack(SCHEDULE, stack, config={"maxFullBackupIntervalHours": 72.0})
    assert relaxed == []


# --- retention ---------------------------------------------------------------------------------


def backup_with(conf: str) -> dict[str, object]:
    return with_upload(container("postgres-backup"), PGBACKREST, conf)


def test_retention_of_thirty_days_passes_prod_minimum() -> None:
    props = container("postgres-backup")
    assert run_resource(RETENTION, props, name="backup", config={"minRetentionDays": 30}) == []


def test_retention_below_minimum_fails() -> None:
    props = container("postgres-backup")
    found = run_resource(RETENTION, props, name="backup", config={"minRetentionDays": 35})
    message = assert_violation(found, "backup", "30 days; the minimum is 35")
    assert "repo1-retention-full=35" in message


def test_count_based_retention_fails() -> None:
    conf = kit.PGBACKREST_CONF.replace("retention-full-type=time", "retention-full-type=count")
    found = run_resource(RETENTION, backup_with(conf), name="backup")
    assert_violation(found, "backup", "repo1-retention-full-type=time")


def test_stanza_overriding_retention_lower_fails() -> None:
    conf = kit.PGBACKREST_CONF + "repo1-retention-full=2\n"
    found = run_resource(RETENTION, backup_with(conf), name="backup")
    assert_violation(found, "backup", "[medisys] keeps full backups for 2 days")


def test_missing_retention_fails_for_every_repository() -> None:
    conf = (
        "[global]\nrepo1-path=/r1\nrepo2-path=/r2\n"
        "repo1-retention-full-type=time\nrepo1-retention-full=9\n"
    )
    found = run_resource(RETENTION, backup_with(conf), name="backup")
    assert_violation(found, "backup", "repo2-retention-full-type=time")
    assert_violation(found, "backup", "does not set repo2-retention-full,")


# --- offsite repository ------------------------------------------------------------------------


def test_offsite_sftp_repository_with_ninety_days_passes_on_backup_and_member() -> None:
    assert run_resource(OFFSITE, container("postgres-backup"), name="backup") == []
    assert run_resource(OFFSITE, container("postgres"), name="pg") == []


def test_missing_offsite_repository_fails() -> None:
    conf = "".join(line + "\n" for line in kit.PGBACKREST_CONF.splitlines() if not line.startswith("repo2-"))
    message = assert_violation(run_resource(OFFSITE, backup_with(conf), name="backup"), "backup", "no offsite repository")
    assert "repo2-type=sftp" in message


def test_a_second_local_repository_is_not_offsite() -> None:
    conf = kit.PGBACKREST_CONF.replace("repo2-type=sftp", "repo2-type=posix")
    assert_violation(run_resource(OFFSITE, backup_with(conf), name="backup"), "backup", "no offsite repository")


def test_offsite_retention_below_minimum_fails() -> None:
    conf = kit.PGBACKREST_CONF.replace("repo2-retention-full=90", "repo2-retention-full=14")
    found = run_resource(OFFSITE, backup_with(conf), name="backup")
    assert_violation(found, "backup", "repo2 keeps full backups for 14 days; the minimum is 90")
    assert run_resource(OFFSITE, backup_with(conf), name="backup", config={"minOffsiteRetentionDays": 14}) == []


def test_count_based_offsite_retention_fails() -> None:
    conf = kit.PGBACKREST_CONF.replace("repo2-retention-full-type=time", "repo2-retention-full-type=count")
    assert_violation(run_resource(OFFSITE, backup_with(conf), name="backup"), "backup", "no time-based minimum")


def test_offsite_server_whose_host_key_is_not_checked_fails() -> None:
    conf = kit.PGBACKREST_CONF.replace("repo2-sftp-host-key-check-type=fingerprint", "repo2-sftp-host-key-check-type=accept-new")
    assert_violation(run_resource(OFFSITE, backup_with(conf), name="backup"), "backup", "any server that answers")


def test_s3_offsite_repository_counts() -> None:
    conf = "".join(line + "\n" for line in kit.PGBACKREST_CONF.splitlines() if not line.startswith("repo2-sftp"))
    conf = conf.replace("repo2-type=sftp", "repo2-type=s3")
    assert run_resource(OFFSITE, backup_with(conf), name="backup") == []


def member_with(conf: str) -> dict:
    return with_upload(container("postgres"), PGBACKREST, conf)


def test_synchronous_archive_push_on_a_member_fails_and_names_the_fix() -> None:
    for conf in (
        kit.PGBACKREST_CONF.replace("archive-async=y\n", ""),  # pgBackRest's default is n
        kit.PGBACKREST_CONF.replace("archive-async=y", "archive-async=n"),
        kit.PGBACKREST_CONF + "archive-async=n\n",  # the stanza's own section overrides [global:archive-push]
        kit.PGBACKREST_CONF + "\n[medisys:archive-push]\narchive-async=n\n",
    ):
        message = assert_violation(run_resource(OFFSITE, member_with(conf), name="pg"), "pg", "archive-push is synchronous")
        assert "archive-async=y in [global:archive-push]" in message


def test_asynchronous_archive_push_counts_wherever_pgbackrest_reads_it() -> None:
    moved = kit.PGBACKREST_CONF.replace("[global:archive-push]\narchive-async=y\n", "").replace("[global]\n", "[global]\narchive-async=y\n")
    assert run_resource(OFFSITE, member_with(moved), name="pg") == []
    other_command = kit.PGBACKREST_CONF.replace("[global:archive-push]", "[global:archive-get]")
    assert run_resource(OFFSITE, member_with(other_command), name="pg") != []
    # The agent takes backups and pushes no WAL: its archive mode is not judged.
    assert run_resource(OFFSITE, backup_with(kit.PGBACKREST_CONF.replace("archive-async=y\n", "")), name="backup") == []


def test_unencrypted_offsite_repository_fails() -> None:
    conf = kit.PGBACKREST_CONF.replace("repo2-cipher-type=aes-256-cbc\n", "")
    assert_violation(run_resource(ENCRYPTED, backup_with(conf), name="backup"), "backup", "does not encrypt repository 2")


# --- encryption --------------------------------------------------------------------------------


def test_encrypted_repository_passes_on_backup_and_primary() -> None:
    assert run_resource(ENCRYPTED, container("postgres-backup"), name="backup") == []
    assert run_resource(ENCRYPTED, container("postgres"), name="pg") == []


def test_unencrypted_repository_fails() -> None:
    conf = kit.PGBACKREST_CONF.replace("repo1-cipher-type=aes-256-cbc\n", "")
    found = run_resource(ENCRYPTED, backup_with(conf), name="backup")
    message = assert_violation(found, "backup", "does not encrypt repository 1")
    assert "repo1-cipher-type=aes-256-cbc" in message


def test_cipher_type_none_in_a_stanza_fails() -> None:
    conf = kit.PGBACKREST_CONF + "repo1-cipher-type=none\n"
    found = run_resource(ENCRYPTED, backup_with(conf), name="backup")
    assert_violation(found, "backup", "does not encrypt repository 1")


def test_missing_passphrase_file_fails() -> None:
    props = container("postgres-backup")
    props["uploads"] = [u for u in props["uploads"] if "conf.d" not in u["file"]]
    found = run_resource(ENCRYPTED, props, name="backup")
    assert_violation(found, "backup", "no cipher passphrase file")


def test_backup_container_without_pgbackrest_conf_fails() -> None:
    found = run_resource(ENCRYPTED, container("postgres-backup", uploads=[]), name="backup")
    assert_violation(found, "backup", "no upload of /etc/pgbackrest/pgbackrest.conf")


def test_containers_without_pgbackrest_are_not_checked() -> None:
    assert run_resource(ENCRYPTED, container("app"), name="app") == []


# --- WAL archiving -----------------------------------------------------------------------------


def primary_with(conf: str) -> dict[str, object]:
    return with_upload(container("postgres"), PG_CONF, conf)


def test_archiving_primary_passes() -> None:
    assert run_resource(WAL, container("postgres"), name="pg") == []


def test_every_member_is_checked_for_archiving_since_any_may_lead() -> None:
    props = with_upload(container("postgres"), PG_CONF, "ssl = on\n")
    assert_violation(run_resource(WAL, props, name="pg-2"), "pg-2", "archive_mode = on")


def test_backup_agent_is_not_checked_for_archiving() -> None:
    assert run_resource(WAL, container("postgres-backup"), name="agent") == []


def test_archive_mode_off_fails() -> None:
    conf = kit.POSTGRESQL_CONF.replace("archive_mode = on", "archive_mode = off")
    assert_violation(run_resource(WAL, primary_with(conf), name="pg"), "pg", "archive_mode = on")


def test_no_op_archive_command_fails() -> None:
    conf = kit.POSTGRESQL_CONF.replace(
        "'pgbackrest --stanza=medisys archive-push %p'", "'/bin/true'"
    )
    found = run_resource(WAL, primary_with(conf), name="pg")
    assert_violation(found, "pg", "discards WAL")


def test_archive_command_without_pgbackrest_fails() -> None:
    conf = kit.POSTGRESQL_CONF.replace("pgbackrest --stanza=medisys archive-push", "cp")
    found = run_resource(WAL, primary_with(conf), name="pg")
    assert_violation(found, "pg", "does not use pgbackrest")


def test_archiving_can_be_switched_off_by_config() -> None:
    conf = kit.POSTGRESQL_CONF.replace("archive_mode = on", "archive_mode = off")
    assert run_resource(WAL, primary_with(conf), name="pg", config={"required": False}) == []


# --- redis persistence -------------------------------------------------------------------------


def test_redis_with_aof_passes() -> None:
    assert run_resource(REDIS, container("redis"), name="r1") == []


def test_redis_without_aof_fails() -> None:
    conf = kit.REDIS_CONF.replace("appendonly yes", "appendonly no")
    props = with_upload(container("redis"), "/etc/redis/redis.conf", conf)
    assert_violation(run_resource(REDIS, props, name="r1"), "r1", "appendonly")


def test_redis_appendfsync_no_fails() -> None:
    conf = kit.REDIS_CONF.replace("appendfsync everysec", "appendfsync no")
    props = with_upload(container("redis"), "/etc/redis/redis.conf", conf)
    assert_violation(run_resource(REDIS, props, name="r1"), "r1", "appendfsync no")


# --- the repository host: members push WAL over TLS, no repository volume on a member -------------

HOST_TLS = kit.policy_named("backup-repository-host-tls")
MEMBER_CONF = kit.MEMBER_PGBACKREST_CONF
REPO_VOLUME = {"volumeName": f"{kit.PREFIX}-backup-repo", "containerPath": "/var/lib/pgbackrest"}


def stack_with(*changes: tuple[str, str, str]) -> list:
    """The baseline with (container name, old, new) replacements in its pgbackrest.conf."""
    stack = baseline_stack()
    for name, old, new in changes:
        props = next(p for _, n, p in stack if n == name)
        text = next(u["content"] for u in props["uploads"] if u["file"] == PGBACKREST)
        assert old in text, (name, old)
        stack = replace(stack, name, uploads=with_upload(props, PGBACKREST, text.replace(old, new))["uploads"])
    return stack


def test_the_repository_host_layout_passes() -> None:
    assert run_stack(HOST_TLS, baseline_stack()) == []


def test_a_member_mounting_the_repository_volume_fails() -> None:
    found = run_stack(HOST_TLS, replace(baseline_stack(), "pg-2", volumes=[REPO_VOLUME]))
    message = assert_violation(messages(found), "pg-2", "mounts volume 'medisys-prod-backup-repo' (role backup-repo)")
    assert "empty repository of the same name" in message and found[0][1] == kit.urn(kit.CONTAINER, "pg-2")


def test_a_member_mounting_anything_at_the_repository_path_fails() -> None:
    found = run_stack(HOST_TLS, replace(baseline_stack(), "pg-1", volumes=[{"volumeName": "stray", "containerPath": "/var/lib/pgbackrest"}]))
    assert_violation(messages(found), "pg-1", "at the repository path /var/lib/pgbackrest")


def test_a_member_pushing_wal_over_ssh_or_without_verifying_the_repository_host_fails() -> None:
    found = run_stack(HOST_TLS, stack_with(("pg-1", "repo1-host-type=tls", "repo1-host-type=ssh")))
    assert_violation(messages(found), "pg-1", "repo1-host-type=ssh (not pgBackRest's TLS server)")
    found = run_stack(HOST_TLS, stack_with(("pg-1", "repo2-host-ca-file=/etc/pgbackrest/tls/ca.crt\n", "")))
    assert_violation(messages(found), "pg-1", "no repo2-host-ca-file")
    # No type at all is pgBackRest's default, ssh.
    found = run_stack(HOST_TLS, stack_with(("pg-2", "repo1-host-type=tls\n", "")))
    assert_violation(messages(found), "pg-2", "repo1-host-type=ssh")


def test_a_member_without_tls_server_auth_fails() -> None:
    found = run_stack(HOST_TLS, stack_with(("pg-1", "tls-server-auth=medisys-prod-backup-agent-client=medisys\n", "")))
    message = assert_violation(messages(found), "pg-1", "runs no complete TLS server (missing tls-server-auth)")
    assert "tls-server-auth=<repository host client CN>=<stanza>" in message


def test_a_member_with_a_repository_of_its_own_fails() -> None:
    stack = replace(baseline_stack(), "pg-1", uploads=with_upload(container("postgres"), PGBACKREST, kit.PGBACKREST_CONF)["uploads"])
    found = run_stack(HOST_TLS, stack)
    assert_violation(messages(found), "pg-1", "repo1 has no repo1-host")
    assert_violation(messages(found), "pg-1", "repo2 has no repo2-host")


def test_a_member_pushing_wal_elsewhere_or_left_out_by_the_repository_host_fails() -> None:
    found = run_stack(HOST_TLS, stack_with(("pg-1", "repo1-host=10.30.0.40", "repo1-host=10.30.0.99")))
    assert_violation(messages(found), "pg-1", "repo1-host=10.30.0.99 is not the repository host's TLS server address (10.30.0.40)")
    found = run_stack(HOST_TLS, stack_with(("pg-2", "tls-server-address=10.30.0.10", "tls-server-address=10.30.0.12")))
    assert_violation(messages(found), "pg-2", "(10.30.0.12) is not among the repository host's members")


def test_a_repository_host_reading_members_volumes_or_reaching_them_unverified_fails() -> None:
    data = {"volumeName": f"{kit.PREFIX}-postgres-data", "containerPath": "/var/lib/postgresql/data", "readOnly": True}
    found = run_stack(HOST_TLS, replace(baseline_stack(), "postgres-backup", volumes=[REPO_VOLUME, data]))
    assert_violation(messages(found), "postgres-backup", "mounts volume 'medisys-prod-postgres-data' (role postgres-data)")
    found = run_stack(HOST_TLS, stack_with(("postgres-backup", "pg2-host-type=tls", "pg2-host-type=ssh")))
    assert_violation(messages(found), "postgres-backup", "reaches member 10.30.0.11 with pg2-host-type=ssh")
    found = run_stack(HOST_TLS, stack_with(("postgres-backup", "pg1-host=10.30.0.10\n", "")))
    assert_violation(messages(found), "postgres-backup", "pg1 has no pg1-host")


def test_a_repository_host_without_its_tls_server_or_with_a_remote_repository_fails() -> None:
    auth = "tls-server-auth=medisys-prod-pg-1-backup-client=medisys\ntls-server-auth=medisys-prod-pg-2-backup-client=medisys\n"
    found = run_stack(HOST_TLS, stack_with(("postgres-backup", auth, "")))
    assert_violation(messages(found), "postgres-backup", "runs no complete TLS server (missing tls-server-auth)")
    found = run_stack(HOST_TLS, stack_with(("postgres-backup", "repo1-path=/var/lib/pgbackrest", "repo1-host=10.30.0.77")))
    assert_violation(messages(found), "postgres-backup", "sends repo1 to another host (10.30.0.77)")


def test_the_single_host_layout_can_be_allowed_by_config() -> None:
    stack = replace(baseline_stack(), "pg-2", volumes=[REPO_VOLUME])
    assert run_stack(HOST_TLS, stack, config={"requireRepositoryHost": False}) == []


def test_the_repository_host_violations_block_prod_and_warn_in_staging() -> None:
    from pulumi.runtime import proto
    from test_policy_pack import analyze_all, servicer

    for unsafe in (
        replace(baseline_stack(), "pg-2", volumes=[REPO_VOLUME]),
        stack_with(("pg-1", "repo1-host-type=tls", "repo1-host-type=ssh")),
        stack_with(("pg-1", "tls-server-auth=medisys-prod-backup-agent-client=medisys\n", "")),
    ):
        for environment, level in (("prod", proto.MANDATORY), ("staging", proto.ADVISORY)):
            hits = [d for d in analyze_all(servicer(environment), unsafe) if d.policyName == "backup-repository-host-tls"]
            assert hits and {d.enforcementLevel for d in hits} == {level}, (environment, [d.message for d in hits])


def test_members_on_the_repository_host_are_judged_for_pushing_to_every_repository_asynchronously() -> None:
    assert run_resource(OFFSITE, member_with(MEMBER_CONF), name="pg") == []
    one = "".join(line + "\n" for line in MEMBER_CONF.splitlines() if not line.startswith("repo2-"))
    message = assert_violation(run_resource(OFFSITE, member_with(one), name="pg"), "pg", "pushes WAL to one repository only (repo1")
    assert "repo2-host" in message
    sync = MEMBER_CONF.replace("archive-async=y", "archive-async=n")
    assert_violation(run_resource(OFFSITE, member_with(sync), name="pg"), "pg", "archive-push is synchronous")


def test_a_member_without_a_repository_of_its_own_needs_no_cipher_pass() -> None:
    # Its repositories are encrypted on the repository host, whose configuration is judged there.
    assert run_resource(ENCRYPTED, member_with(MEMBER_CONF), name="pg") == []
    agent = container("postgres-backup")
    agent["uploads"] = [u for u in agent["uploads"] if not u["file"].startswith("/etc/pgbackrest/conf.d/")]
    assert_violation(run_resource(ENCRYPTED, agent, name="backup"), "backup", "no cipher passphrase file")
