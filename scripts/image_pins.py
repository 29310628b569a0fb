#!/usr/bin/env python3
"""The Debian package pins of the service images (images/packages.lock).

Every image installs Debian packages at exact versions so that two builds a month
apart install the same bytes. The pins live in one file, images/packages.lock: one
`package=version` a line, the union of every package in every image, the base
image's own packages and every dependency included. scripts/build-images passes
the file to each build as the build argument APT_PINS; each Dockerfile turns it
into an apt preferences file (priority 1001, so dependencies take the pinned
version too, and `apt-get upgrade --allow-downgrades` moves the base image's own
packages to theirs, whichever day the base was made), names its own packages with
`=version` as well, and after the install fails if any installed package is not
at a pinned version. `update` pins the base packages at the mirror's newest
versions, so security updates reach the images through the lock.

No dated snapshot of the archive is reachable here (only Debian's mirror), and the
mirror serves only the current versions of a suite: a pin goes stale when a point
release or a security update replaces its version. `check` says so before a build
starts, package by package, instead of apt's "Version '...' for '...' was not found".

Usage (stdlib only; needs the Docker engine and the base image debian:trixie-slim):
  python3 scripts/image_pins.py check    the mirror still serves every pin (exit 1, with
                                         what is gone and what is there now, if not)
  python3 scripts/image_pins.py update   resolve every image against today's mirror and
                                         rewrite images/packages.lock and the Dockerfiles'
                                         `=version` pins (review the diff, rebuild, commit)
  python3 scripts/image_pins.py lint     every apt-get install in every Dockerfile pinned,
                                         and pinned as the lock says (no Docker needed)
Options: --lock FILE (default images/packages.lock), --base IMAGE (default debian:trixie-slim).
"""

from __future__ import annotations

import argparse
import datetime
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "images"
LOCK = IMAGES / "packages.lock"
BASE_IMAGE = "debian:trixie-slim"
UPDATE_HINT = (
    "Update the pins to what the mirror serves today: python3 scripts/image_pins.py update "
    "(rewrites images/packages.lock and the Dockerfiles' pins), review the diff, change images/RELEASE, "
    "run scripts/build-images (it rebuilds and smoke-tests every image) and commit."
)
# Debian package names and versions (Debian Policy 5.6.1 and 5.6.12).
_NAME = r"[a-z0-9][a-z0-9+.-]+"
_VERSION = r"(?:[0-9]+:)?[0-9][A-Za-z0-9.+~-]*"
PIN_RE = re.compile(rf"^({_NAME})=({_VERSION})$")


# What every Dockerfile that installs Debian packages must do with the lock (lint checks it).
PIN_SNIPPET = (
    "ARG APT_PINS",
    ">/etc/apt/preferences.d/medisys-pins",
    "apt-get upgrade -y --allow-downgrades",
    "grep -vxF -f /tmp/apt-pins /tmp/apt-installed",
)


class PinError(Exception):
    """A pin problem, with the message to show."""


# ---- the lock file -------------------------------------------------------------------------------


def read_lock(path: Path = LOCK) -> dict[str, str]:
    """package -> version from a lock file; comments and blank lines are skipped."""
    if not path.is_file():
        raise PinError(f"{path} is missing. Create it with: python3 scripts/image_pins.py update")
    pins: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = PIN_RE.match(line)
        if not match:
            raise PinError(f"{path}:{number}: '{line}' is not 'package=version'. Fix the line or regenerate the file.")
        name, version = match.groups()
        if name in pins and pins[name] != version:
            raise PinError(f"{path}:{number}: {name} is pinned twice ({pins[name]} and {version}). Keep one.")
        pins[name] = version
    if not pins:
        raise PinError(f"{path} pins nothing. Regenerate it with: python3 scripts/image_pins.py update")
    return pins


def write_lock(pins: dict[str, str], mirror_note: str, path: Path = LOCK) -> None:
    header = [
        "# Debian packages of the service images: every package in every image (the base",
        "# image's own and all dependencies included) at the version its builds install.",
        "# scripts/build-images passes this file to each build (APT_PINS), after checking that",
        "# the mirror still serves every version here (python3 scripts/image_pins.py check).",
        "# Written by `python3 scripts/image_pins.py update`; do not edit by hand.",
        f"# Resolved {datetime.date.today().isoformat()} against {mirror_note}.",
    ]
    body = [f"{name}={pins[name]}" for name in sorted(pins)]
    path.write_text("\n".join(header + body) + "\n")


def build_arg(path: Path = LOCK) -> str:
    """The lock as the one-line value of the APT_PINS build argument."""
    pins = read_lock(path)
    return " ".join(f"{name}={pins[name]}" for name in sorted(pins))


# ---- the Dockerfiles -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Install:
    dockerfile: Path
    line: int
    packages: tuple[str, ...]  # as written: name=version or a bare name


def dockerfiles() -> list[Path]:
    return sorted(IMAGES.glob("*/Dockerfile"))


def _instructions(text: str) -> list[tuple[int, str]]:
    """(first line number, instruction with continuations joined), comments dropped."""
    out: list[tuple[int, str]] = []
    current: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not current):
            continue
        if not current:
            start = number
        if stripped.endswith("\\"):
            current.append(stripped[:-1])
            continue
        current.append(stripped)
        out.append((start, " ".join(current)))
        current = []
    if current:
        out.append((start, " ".join(current)))
    return out


def installs(dockerfile: Path) -> list[Install]:
    """Every `apt-get install` (or `apt install`) in the Dockerfile's RUN instructions."""
    found: list[Install] = []
    for line, instruction in _instructions(dockerfile.read_text()):
        if not instruction.upper().startswith("RUN "):
            continue
        for command in re.split(r";|&&|\|\||\|", instruction[4:]):
            try:
                words = shlex.split(command)
            except ValueError:
                words = command.split()
            for i, word in enumerate(words):
                if word in ("apt-get", "apt", "aptitude") and "install" in words[i + 1 :]:
                    rest = words[words.index("install", i + 1) + 1 :]
                    packages = tuple(w for w in rest if not w.startswith("-"))
                    found.append(Install(dockerfile, line, packages))
                    break
    return found


def lint(pins: dict[str, str]) -> list[str]:
    """Problems: an install that names a package without a version, or at another version than the lock."""
    problems: list[str] = []
    seen = False
    for dockerfile in dockerfiles():
        where = dockerfile.relative_to(ROOT)
        for install in installs(dockerfile):
            seen = True
            if not install.packages:
                problems.append(f"{where}:{install.line}: apt-get install names no package")
            for spec in install.packages:
                match = PIN_RE.match(spec)
                if not match:
                    problems.append(
                        f"{where}:{install.line}: '{spec}' is not pinned: write it as {spec}=<version> "
                        f"(python3 scripts/image_pins.py update adds it to images/packages.lock and writes the version)"
                    )
                    continue
                name, version = match.groups()
                if pins.get(name) != version:
                    problems.append(
                        f"{where}:{install.line}: {name}={version}, but images/packages.lock pins "
                        f"{name}={pins.get(name, '(nothing)')}: run python3 scripts/image_pins.py update"
                    )
        text = dockerfile.read_text()
        missing = [part for part in PIN_SNIPPET if part not in text]
        if installs(dockerfile) and missing:
            problems.append(
                f"{where}: installs Debian packages without the pinning steps {missing} "
                f"(copy them from images/haproxy/Dockerfile: the lock's preferences, the upgrade and the check)"
            )
    if not seen:
        problems.append("no apt-get install found in images/*/Dockerfile: the parser is broken")
    return problems


def _rewrite_dockerfile_pins(dockerfile: Path, pins: dict[str, str]) -> bool:
    """Set every package named by an apt-get install (bare or name=old) to name=pins[name]."""
    text = dockerfile.read_text()

    def repin(token: re.Match[str]) -> str:
        name = token.group(1)
        return f"{name}={pins[name]}" if name in pins else token.group(0)

    def region(match: re.Match[str]) -> str:
        packages = re.sub(rf"(?<=\s)({_NAME})(?:=({_VERSION}))?(?=\s|$)", repin, match.group(2))
        return match.group(1) + packages

    new = re.sub(r"(\bapt-get\s[^;&|]*?\binstall\b)([^;&|]*)", region, text)
    if new != text:
        dockerfile.write_text(new)
        return True
    return False


# ---- the mirror, through a container of the base image ---------------------------------------------


def _in_base(script: str, base: str) -> str:
    """Run a shell script in a throwaway container of the base image (apt lists fetched first)."""
    full = "set -e\napt-get update -qq >/dev/null 2>/tmp/apt-update.err || { cat /tmp/apt-update.err >&2; exit 3; }\n" + script
    try:
        result = subprocess.run(
            ["docker", "run", "--rm", "-i", base, "bash", "-s"],
            input=full,
            capture_output=True,
            text=True,
            timeout=600,
        )
    except FileNotFoundError as exc:
        raise PinError("docker is not on PATH: start the engine (scripts/lib/docker-engine.sh) and run this again") from exc
    if result.returncode == 3:
        raise PinError(
            f"apt-get update in {base} failed, so the pins could not be checked against the mirror:\n"
            f"{result.stderr.strip()}\nCheck that the Debian mirror answers, then run this again."
        )
    if result.returncode != 0:
        raise PinError(f"the check container ({base}) failed: {result.stderr.strip()[-2000:]}")
    return result.stdout


def parse_madison(text: str) -> dict[str, list[str]]:
    """`apt-cache madison` output -> package -> versions the mirror serves (any suite)."""
    served: dict[str, list[str]] = {}
    for line in text.splitlines():
        parts = [p.strip() for p in line.split("|")]
        if len(parts) >= 3 and parts[2].endswith("Packages"):
            versions = served.setdefault(parts[0], [])
            if parts[1] not in versions:
                versions.append(parts[1])
    return served


def stale_pins(pins: dict[str, str], served: dict[str, list[str]]) -> list[str]:
    """One message per pin whose version the mirror no longer serves."""
    messages: list[str] = []
    for name in sorted(pins):
        if pins[name] in served.get(name, []):
            continue
        now = ", ".join(served.get(name, [])) or "nothing (the package is gone from the suite)"
        messages.append(f"{name}={pins[name]} is not served by the mirror; available now: {now}")
    return messages


def base_drift(pins: dict[str, str], installed: dict[str, str]) -> list[str]:
    """One message per package of the base image that the lock does not pin at all.

    A base package at another version than its pin is fine: every image build moves it to the
    pinned version (apt-get upgrade --allow-downgrades under the lock's preferences)."""
    return [
        f"the base image has {name}={installed[name]}, which the lock does not pin"
        for name in sorted(installed)
        if name not in pins
    ]


def _installed(output: str) -> dict[str, str]:
    installed: dict[str, str] = {}
    for line in output.splitlines():
        if line.startswith("HAVE "):
            _, name, version = line.split()
            installed[name] = version
    return installed


_HAVE = "dpkg-query -W -f '${db:Status-Status} ${Package} ${Version}\\n' | awk '$1==\"installed\" {print \"HAVE\", $2, $3}'\n"


def check(lock: Path, base: str) -> int:
    pins = read_lock(lock)
    output = _in_base(_HAVE + "apt-cache madison " + " ".join(sorted(pins)) + " || true\n", base)
    stale = stale_pins(pins, parse_madison(output))
    drift = base_drift(pins, _installed(output))
    shown = lock.relative_to(ROOT) if lock.is_relative_to(ROOT) else lock
    if not stale and not drift:
        print(f"[image-pins] the mirror serves all {len(pins)} versions pinned in {shown}; every package of the base image {base} is pinned")
        return 0
    if stale:
        print(f"[image-pins] ERROR: {len(stale)} of the {len(pins)} Debian package versions pinned in {shown} are gone from the mirror:", file=sys.stderr)
        for message in stale:
            print(f"[image-pins]   {message}", file=sys.stderr)
    if drift:
        print(f"[image-pins] ERROR: the base image {base} has packages the lock does not pin "
              f"(it was made again from a newer Debian point release):", file=sys.stderr)
        for message in drift:
            print(f"[image-pins]   {message}", file=sys.stderr)
    print(f"[image-pins] {UPDATE_HINT}", file=sys.stderr)
    return 1


def resolve(base: str) -> tuple[dict[str, str], str]:
    """Today's versions: the base image's packages upgraded to the mirror's newest (security
    updates included), plus what each image's installs add on top."""
    script = ["DEBIAN_FRONTEND=noninteractive apt-get upgrade -y -qq >/dev/null", _HAVE]
    for dockerfile in dockerfiles():
        names = sorted({spec.split("=", 1)[0] for install in installs(dockerfile) for spec in install.packages})
        if names:
            script.append(f"apt-get install -s --no-install-recommends {' '.join(names)} | sed -n 's/^Inst /INST /p'")
    script.append("grep -h '^URIs:' /etc/apt/sources.list.d/*.sources | sort -u | sed 's/^/SRC /'")
    output = _in_base("\n".join(script) + "\n", base)
    pins = _installed(output)
    base_packages = set(pins)
    sources: list[str] = []
    for line in output.splitlines():
        if line.startswith("INST "):
            # Inst libfoo [old] (1.2-3 Debian:13.8/stable [amd64])
            match = re.match(rf"INST ({_NAME})(?::\S+)? (?:\[\S+\] )?\(({_VERSION}) ", line)
            if not match:
                raise PinError(f"cannot read apt's simulated install line: {line}")
            name, version = match.groups()
            if name in base_packages and pins[name] != version:
                raise PinError(
                    f"an image's install would upgrade {name} of the base image from {pins[name]} to {version}: "
                    f"make the base image again from today's mirror (MEDISYS_BASE_REBUILD=1 bash scripts/lib/base-image.sh "
                    f"after removing {base}), then run this again"
                )
            pins[name] = version
        elif line.startswith("SRC "):
            sources.append(line.split(None, 2)[2])
    return pins, "the Debian mirror (" + ", ".join(sources) + ")"


def update(lock: Path, base: str) -> int:
    pins, note = resolve(base)
    old = read_lock(lock) if lock.is_file() else {}
    write_lock(pins, note, lock)
    changed = [f"{n}: {old.get(n, '-')} -> {pins.get(n, '-')}" for n in sorted(set(old) | set(pins)) if old.get(n) != pins.get(n)]
    print(f"[image-pins] {lock}: {len(pins)} packages, {len(changed)} changed")
    for line in changed:
        print(f"[image-pins]   {line}")
    for dockerfile in dockerfiles():
        if _rewrite_dockerfile_pins(dockerfile, pins):
            print(f"[image-pins] rewrote the pins in {dockerfile.relative_to(ROOT)}")
    problems = lint(pins)
    for problem in problems:
        print(f"[image-pins] ERROR: {problem}", file=sys.stderr)
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["check", "update", "lint", "build-arg"])
    parser.add_argument("--lock", type=Path, default=LOCK)
    parser.add_argument("--base", default=BASE_IMAGE)
    args = parser.parse_args(argv)
    try:
        if args.command == "check":
            return check(args.lock, args.base)
        if args.command == "update":
            return update(args.lock, args.base)
        if args.command == "build-arg":
            print(build_arg(args.lock))
            return 0
        problems = lint(read_lock(args.lock))
        for problem in problems:
            print(f"[image-pins] {problem}", file=sys.stderr)
        return 1 if problems else 0
    except PinError as exc:
        print(f"[image-pins] ERROR: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
