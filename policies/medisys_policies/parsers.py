"""Tiny, tolerant parsers for the config files the program uploads.

They understand just enough of each format for the policies: sections and directives for
haproxy.cfg, settings for postgresql.conf, rules for pg_hba.conf, directives for redis.conf and
key=value pairs for pgBackRest's ini file. They never raise on odd input: a line they cannot
read is skipped, and the policy then reports the setting as missing (fail closed).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final


def split_words(line: str, inline_comments: bool = True) -> list[str]:
    """Split a config line into words: whitespace-separated, "..." and '...' quoting and
    backslash escapes. '#' starts a comment outside quotes (haproxy, pg_hba); with
    `inline_comments=False` only a line starting with '#' is a comment (redis)."""
    if not inline_comments and line.lstrip().startswith("#"):
        return []
    words: list[str] = []
    current: list[str] = []
    in_word = False
    quote = ""
    index = 0
    while index < len(line):
        char = line[index]
        if char == "\\" and index + 1 < len(line) and quote != "'":
            current.append(line[index + 1])
            in_word = True
            index += 2
            continue
        if quote:
            if char == quote:
                quote = ""
            else:
                current.append(char)
        elif char in "\"'":
            quote, in_word = char, True
        elif char == "#" and inline_comments:
            break
        elif char.isspace():
            if in_word:
                words.append("".join(current))
                current, in_word = [], False
        else:
            current.append(char)
            in_word = True
        index += 1
    if in_word:
        words.append("".join(current))
    return words


# --- haproxy.cfg ------------------------------------------------------------------------------

HAPROXY_SECTIONS: Final = frozenset(
    {
        "global",
        "defaults",
        "frontend",
        "backend",
        "listen",
        "userlist",
        "peers",
        "resolvers",
        "mailers",
        "program",
        "http-errors",
        "ring",
        "cache",
        "crt-store",
        "log-forward",
        "fcgi-app",
        "traces",
    }
)


@dataclass(frozen=True)
class HaproxySection:
    kind: str
    name: str
    mode: str  # "http" or "tcp": the section's own `mode`, else the preceding defaults'
    lines: tuple[tuple[str, ...], ...]

    def directives(self, keyword: str) -> list[tuple[str, ...]]:
        return [line for line in self.lines if line and line[0] == keyword]

    def has(self, *words: str) -> bool:
        """True if a line starts with exactly these words (case-insensitive)."""
        wanted = [w.lower() for w in words]
        return any([w.lower() for w in line[: len(wanted)]] == wanted for line in self.lines)


@dataclass(frozen=True)
class HaproxyConfig:
    sections: tuple[HaproxySection, ...]

    def of_kind(self, *kinds: str) -> list[HaproxySection]:
        return [s for s in self.sections if s.kind in kinds]

    def named(self, kind: str, name: str) -> HaproxySection | None:
        for section in self.sections:
            if section.kind == kind and section.name == name:
                return section
        return None


def parse_haproxy(text: str) -> HaproxyConfig:
    sections: list[HaproxySection] = []
    kind, name = "", ""  # directives before any section are ignored
    lines: list[tuple[str, ...]] = []
    default_mode = "tcp"  # HAProxy's own default

    def close() -> None:
        nonlocal default_mode
        if not kind:
            return
        own = [line[1] for line in lines if len(line) > 1 and line[0] == "mode"]
        mode = own[-1] if own else default_mode
        if kind == "defaults":
            default_mode = mode
        sections.append(HaproxySection(kind, name, mode, tuple(lines)))

    for raw in text.splitlines():
        words = split_words(raw)
        if not words:
            continue
        if words[0] in HAPROXY_SECTIONS:
            close()
            kind, name, lines = words[0], (words[1] if len(words) > 1 else ""), []
        else:
            lines.append(tuple(words))
    close()
    return HaproxyConfig(tuple(sections))


def bind_host(address: str) -> str:
    """The host part of a haproxy bind address ("10.0.0.2:443" -> "10.0.0.2", "*:80" -> "*")."""
    address = re.sub(r"^(ipv4|ipv6)@", "", address)
    if address.startswith("["):
        return address[1 : address.find("]")] if "]" in address else address
    if address.count(":") > 1:  # a bare IPv6 address with a port, e.g. ":::443"
        return address.rsplit(":", 1)[0]
    return address.split(":", 1)[0] if ":" in address else address


WILDCARD_HOSTS: Final = frozenset({"", "*", "0.0.0.0", "::", "[::]"})


# --- postgresql.conf ----------------------------------------------------------------------------

_PG_SETTING: Final = re.compile(r"^\s*([A-Za-z0-9_.]+)\s*(?:=\s*|\s+)(.*)$")


def _pg_value(rest: str) -> str:
    rest = rest.strip()
    if rest.startswith("'"):
        value: list[str] = []
        index = 1
        while index < len(rest):
            char = rest[index]
            if char == "'" and rest[index + 1 : index + 2] == "'":
                value.append("'")
                index += 2
                continue
            if char == "\\" and index + 1 < len(rest):
                value.append(rest[index + 1])
                index += 2
                continue
            if char == "'":
                break
            value.append(char)
            index += 1
        return "".join(value)
    rest = rest.split("#", 1)[0].strip()
    return rest.split()[0] if rest else ""


def parse_postgresql_conf(text: str) -> dict[str, str]:
    """Settings of a postgresql.conf (names lower-cased, last assignment wins)."""
    settings: dict[str, str] = {}
    for raw in text.splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _PG_SETTING.match(stripped)
        if match:
            settings[match.group(1).lower()] = _pg_value(match.group(2))
    return settings


# --- pg_hba.conf --------------------------------------------------------------------------------

HBA_METHODS: Final = frozenset(
    {
        "trust",
        "reject",
        "scram-sha-256",
        "md5",
        "password",
        "gss",
        "sspi",
        "ident",
        "peer",
        "ldap",
        "radius",
        "cert",
        "pam",
        "bsd",
        "oauth",
    }
)


@dataclass(frozen=True)
class HbaRule:
    line: int
    conn_type: str  # local, host, hostssl, hostnossl, hostgssenc, hostnogssenc, include...
    method: str | None


def parse_pg_hba(text: str) -> list[HbaRule]:
    rules: list[HbaRule] = []
    pending = ""
    for number, raw in enumerate(text.splitlines(), start=1):
        if raw.rstrip().endswith("\\"):  # a continued line
            pending += raw.rstrip()[:-1] + " "
            continue
        words = split_words(pending + raw)
        pending = ""
        if not words:
            continue
        conn_type = words[0].lower()
        if conn_type.startswith("include"):
            rules.append(HbaRule(number, conn_type, None))
            continue
        first_method_index = 3 if conn_type == "local" else 4
        method = next(
            (w.lower() for w in words[first_method_index:] if w.lower() in HBA_METHODS), None
        )
        rules.append(HbaRule(number, conn_type, method))
    return rules


# --- redis.conf ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RedisConfig:
    directives: tuple[tuple[str, tuple[str, ...]], ...]

    def all(self, name: str) -> list[tuple[str, ...]]:
        return [args for key, args in self.directives if key == name]

    def value(self, name: str) -> str | None:
        """The first argument of the last occurrence (the one Redis applies)."""
        found = self.all(name)
        return found[-1][0] if found and found[-1] else None

    def has(self, name: str) -> bool:
        return bool(self.all(name))


def parse_redis_conf(text: str) -> RedisConfig:
    directives: list[tuple[str, tuple[str, ...]]] = []
    for raw in text.splitlines():
        words = split_words(raw, inline_comments=False)
        if words:
            directives.append((words[0].lower(), tuple(words[1:])))
    return RedisConfig(tuple(directives))


_REDIS_UNITS: Final = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1024,
    "m": 1000**2,
    "mb": 1024**2,
    "g": 1000**3,
    "gb": 1024**3,
}


def parse_redis_size(value: str) -> int | None:
    """Bytes of a Redis memory size ("256mb", "1gb", "100000"); None if unreadable."""
    match = re.fullmatch(r"\s*(\d+)\s*([a-zA-Z]*)\s*", value)
    if not match or match.group(2).lower() not in _REDIS_UNITS:
        return None
    return int(match.group(1)) * _REDIS_UNITS[match.group(2).lower()]


# --- pgbackrest.conf (ini) ----------------------------------------------------------------------


@dataclass(frozen=True)
class IniFile:
    entries: tuple[tuple[str, str, str], ...]  # (section, key, value) in file order

    def values(self, key: str) -> list[tuple[str, str]]:
        """(section, value) for every assignment of `key`, in any section."""
        return [(section, value) for section, k, value in self.entries if k == key]

    def options(self) -> list[tuple[str, str]]:
        return [(section, key) for section, key, _ in self.entries]

    def sections(self) -> list[str]:
        return list(dict.fromkeys(section for section, _, _ in self.entries))


def parse_ini(text: str) -> IniFile:
    entries: list[tuple[str, str, str]] = []
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
            continue
        key, sep, value = line.partition("=")
        if sep:
            entries.append((section, key.strip().lower(), value.strip()))
    return IniFile(tuple(entries))
