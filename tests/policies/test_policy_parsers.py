"""The tiny config parsers the policies rely on."""

from __future__ import annotations

import policy_testkit as kit
from medisys_policies.parsers import (
    bind_host,
    parse_haproxy,
    parse_ini,
    parse_pg_hba,
    parse_postgresql_conf,
    parse_redis_conf,
    parse_redis_size,
    split_words,
)


def test_split_words_handles_quotes_escapes_and_comments() -> None:
    line = "http-response set-header X \"a b\" 'c d' e\\ f # comment"
    assert split_words(line) == ["http-response", "set-header", "X", "a b", "c d", "e f"]


def test_split_words_redis_mode_keeps_hash_inside_arguments() -> None:
    assert split_words("requirepass ab#cd", inline_comments=False) == ["requirepass", "ab#cd"]
    assert split_words("  # a comment", inline_comments=False) == []


def test_haproxy_sections_and_inherited_mode() -> None:
    config = parse_haproxy(kit.HAPROXY_CFG)
    kinds = [(s.kind, s.name) for s in config.sections]
    assert kinds == [
        ("global", ""),
        ("defaults", ""),
        ("frontend", "http-in"),
        ("frontend", "https-in"),
        ("frontend", "stats"),
        ("backend", "app"),
    ]
    https = config.named("frontend", "https-in")
    assert https is not None and https.mode == "http"
    assert https.directives("bind")[0][:3] == ("bind", "*:443", "ssl")
    assert https.has("default_backend", "app")


def test_haproxy_mode_defaults_to_tcp_without_defaults_section() -> None:
    config = parse_haproxy("frontend f\n  bind :5432\n")
    assert config.sections[0].mode == "tcp"


def test_bind_host_variants() -> None:
    assert bind_host("10.0.0.2:443") == "10.0.0.2"
    assert bind_host("*:80") == "*"
    assert bind_host(":80") == ""
    assert bind_host(":::443") == "::"
    assert bind_host("[::1]:443") == "::1"
    assert bind_host("ipv4@0.0.0.0:80") == "0.0.0.0"


def test_postgresql_conf_quotes_comments_and_last_assignment_wins() -> None:
    conf = parse_postgresql_conf(
        "SSL = off\nssl on\narchive_command = 'cp %p ''/a b/%f'' # not a comment'  # comment\n"
        "# archive_mode = off\nport=5433\n"
    )
    assert conf["ssl"] == "on"
    assert conf["archive_command"] == "cp %p '/a b/%f' # not a comment"
    assert conf["port"] == "5433"
    assert "archive_mode" not in conf


def test_pg_hba_rules_find_the_method_after_optional_mask() -> None:
    rules = parse_pg_hba(
        "local all all peer\n"
        "hostssl all all 10.0.0.0 255.255.255.0 scram-sha-256 clientcert=verify-full\n"
        "host all all ::1/128 trust # comment\n"
        'hostssl "my db" all samenet md5\n'
        "include_if_exists extra.conf\n"
    )
    assert [(r.line, r.conn_type, r.method) for r in rules] == [
        (1, "local", "peer"),
        (2, "hostssl", "scram-sha-256"),
        (3, "host", "trust"),
        (4, "hostssl", "md5"),
        (5, "include_if_exists", None),
    ]


def test_redis_conf_last_value_and_sizes() -> None:
    conf = parse_redis_conf('port 6379\nPORT 0\nsave ""\n# tls-port 1\n')
    assert conf.value("port") == "0"
    assert not conf.has("tls-port")
    assert conf.all("save") == [("",)]
    assert parse_redis_size("256mb") == 256 * 1024 * 1024
    assert parse_redis_size("1g") == 1000**3
    assert parse_redis_size("100") == 100
    assert parse_redis_size("lots") is None


def test_ini_keeps_every_assignment_with_its_section() -> None:
    ini = parse_ini(kit.PGBACKREST_CONF + "[medisys]\nrepo1-retention-full=3\n")
    assert ini.values("repo1-retention-full") == [("global", "30"), ("medisys", "3")]
    assert ini.sections() == ["global", "global:archive-push", "medisys"]
    assert ("medisys", "pg1-path") in ini.options()
