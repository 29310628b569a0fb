"""Pulumi's official release archives, when they can be reached: the provider plugins and the CLI,
each verified against the SHA-256 sums published with its release. Standard library only, so the
set-up (scripts/lib/providers.sh, scripts/lib/toolchain.sh) runs it with any python3.

    python3 toolchain/upstream.py plugins DIR NAME=VERSION...
        one line per plugin on stdout, tab-separated:  NAME VERSION upstream TARBALL
                                                   or  NAME VERSION stand-in REASON
    python3 toolchain/upstream.py cli DIR VERSION
        the verified tarball's path on stdout (exit 0), or the reason on stderr (exit 1)

Where a plugin comes from follows Pulumi's CLI (sdk/go/common/workspace/plugins.go, v3.276.0):
- An official plugin's source is `github://api.github.com/pulumi/pulumi-NAME`. When
  PULUMI_PLUGIN_DOWNLOAD_URL_OVERRIDES (`regexp=URL` pairs separated by commas) has a regexp that
  matches that source (searched, not anchored; the first that matches wins; `$1` and `${group}`
  in URL take the regexp's groups), the plugin comes from URL instead: an http(s) base in which
  ${NAME}, ${VERSION}, ${OS} and ${ARCH} are filled in, holding
  `pulumi-resource-NAME-vVERSION-OS-ARCH.tar.gz`.
- Otherwise from the provider's GitHub release
  (https://github.com/pulumi/pulumi-NAME/releases/download/vVERSION/ARCHIVE), then from
  https://get.pulumi.com/releases/plugins/ARCHIVE (an override matching that URL applies too).
Checksums: each provider's release carries goreleaser's `pulumi-NAME_VERSION_checksums.txt`
(sha256sum lines) beside the archives; a mirror named by an override must carry it too. The
bucket get.pulumi.com holds archives only, so its downloads are checked against the GitHub
release's sums. An archive whose sum is not published, or differs, is refused (never installed).

The CLI: https://get.pulumi.com/releases/sdk/pulumi-vVERSION-OS-x64.tar.gz with
pulumi-VERSION-checksums.txt beside it (MEDISYS_PULUMI_RELEASES_URL replaces that base), then the
same two files from https://github.com/pulumi/pulumi/releases/download/vVERSION.

Bounded for offline machines: every connection (name lookup included) and every stalled read gives
up after MEDISYS_DOWNLOAD_TIMEOUT seconds (default 5), and a host that could not be reached once
is not tried again in the same run. MEDISYS_OFFLINE=1 tries nothing.
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import socket
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

OVERRIDES_VARIABLE = "PULUMI_PLUGIN_DOWNLOAD_URL_OVERRIDES"
GET_PULUMI_PLUGINS = "https://get.pulumi.com/releases/plugins"
GET_PULUMI_SDK = "https://get.pulumi.com/releases/sdk"
TOTAL_SECONDS = 900  # one archive's whole download, however steady


class Unavailable(Exception):
    """This source did not give the file (unreachable host, HTTP error): another source may."""


class Refused(Exception):
    """The file arrived but must not be used (checksum missing or different): no other source is tried."""


def log(message: str) -> None:
    print(f"[toolchain]   {message}", file=sys.stderr, flush=True)


# --- where from -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Override:
    pattern: re.Pattern[str]
    url: str


def parse_overrides(text: str) -> list[Override]:
    """PULUMI_PLUGIN_DOWNLOAD_URL_OVERRIDES as Pulumi parses it: `regexp1=URL1,regexp2=URL2`."""
    if not text:
        return []
    overrides = []
    for pair in text.split(","):
        parts = pair.split("=")
        if len(parts) != 2 or not parts[0] or not parts[1]:
            raise ValueError(f'{OVERRIDES_VARIABLE}: expected "regexp1=URL1,regexp2=URL2", got {text!r}')
        try:
            pattern = re.compile(parts[0])
        except re.error as error:
            raise ValueError(f"{OVERRIDES_VARIABLE}: {parts[0]!r} is not a regular expression: {error}") from None
        overrides.append(Override(pattern, parts[1]))
    return overrides


def override_for(url: str, overrides: list[Override]) -> str | None:
    for override in overrides:
        match = override.pattern.search(url)
        if match is None:
            continue
        result = override.url
        names = {index: name for name, index in override.pattern.groupindex.items()}
        for index in range(len(match.groups()) + 1):
            value = match.group(index) or ""
            result = result.replace(f"${index}", value)
            if index in names:
                result = result.replace(f"${{{names[index]}}}", value)
        return result
    return None


def platform_names() -> tuple[str, str]:
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(machine, machine)
    return platform.system().lower(), arch


def interpolate(base: str, name: str, version: str, os_name: str, arch: str) -> str:
    for key, value in (("NAME", name), ("VERSION", version), ("OS", os_name), ("ARCH", arch)):
        base = base.replace(f"${{{key}}}", value).replace(f"$%7B{key}%7D", value)
    return base.rstrip("/")


@dataclass(frozen=True)
class Source:
    archive_base: str  # the archive is archive_base/ARCHIVE
    sums_base: str  # the checksums file is sums_base/SUMS


def plugin_sources(name: str, version: str, overrides: list[Override]) -> list[Source]:
    os_name, arch = platform_names()
    github = f"https://github.com/pulumi/pulumi-{name}/releases/download/v{version}"
    replaced = override_for(f"github://api.github.com/pulumi/pulumi-{name}", overrides)
    if replaced is not None:
        if replaced.startswith(("http://", "https://")):
            base = interpolate(replaced, name, version, os_name, arch)
            return [Source(base, base)]
        parsed = urllib.parse.urlparse(replaced)
        parts = parsed.path.strip("/").split("/")
        if parsed.scheme == "github" and parsed.netloc == "api.github.com" and len(parts) in (1, 2) and parts[0]:
            repository = parts[1] if len(parts) == 2 else f"pulumi-{name}"
            base = f"https://github.com/{parts[0]}/{repository}/releases/download/v{version}"
            return [Source(base, base)]
        raise Refused(f"{OVERRIDES_VARIABLE} sends {name} to {replaced!r}: the set-up downloads from http(s) and github://api.github.com only")
    mirror = override_for(GET_PULUMI_PLUGINS, overrides)
    fallback = Source(interpolate(mirror, name, version, os_name, arch), interpolate(mirror, name, version, os_name, arch)) if mirror \
        else Source(GET_PULUMI_PLUGINS, github)
    return [Source(github, github), fallback]


def plugin_archive(name: str, version: str) -> str:
    os_name, arch = platform_names()
    return f"pulumi-resource-{name}-v{version}-{os_name}-{arch}.tar.gz"


def plugin_sums(name: str, version: str) -> str:
    return f"pulumi-{name}_{version}_checksums.txt"


def cli_archive(version: str) -> str:
    os_name, arch = platform_names()
    return f"pulumi-v{version}-{os_name}-{'x64' if arch == 'amd64' else arch}.tar.gz"


def cli_sources(version: str) -> list[Source]:
    base = os.environ.get("MEDISYS_PULUMI_RELEASES_URL", "").rstrip("/") or GET_PULUMI_SDK
    github = f"https://github.com/pulumi/pulumi/releases/download/v{version}"
    return [Source(base, base), Source(github, github)]


def parse_sums(text: str) -> dict[str, str]:
    """sha256sum output: `HEX  NAME` (or `HEX *NAME`) per line."""
    sums = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and re.fullmatch(r"[0-9a-fA-F]{64}", parts[0]):
            sums[parts[1].lstrip("*")] = parts[0].lower()
    return sums


# --- how -------------------------------------------------------------------------------------------


def resolves(host: str, timeout: float) -> str | None:
    """None when HOST resolves within TIMEOUT, else why not (a name lookup has no timeout of its own)."""
    outcome: list[str | None] = []

    def lookup() -> None:
        try:
            socket.getaddrinfo(host, None)
            outcome.append(None)
        except OSError as error:
            outcome.append(f"cannot resolve {host} ({error.strerror or error})")

    thread = threading.Thread(target=lookup, daemon=True)
    thread.start()
    thread.join(timeout)
    return outcome[0] if outcome else f"no answer resolving {host} within {timeout:g}s"


@dataclass
class Net:
    timeout: float = 5.0
    unreachable: dict[str, str] = field(default_factory=dict)  # host -> why

    def open(self, url: str):  # type: ignore[no-untyped-def]
        parts = urllib.parse.urlparse(url)
        host = parts.hostname or ""
        if host in self.unreachable:
            raise Unavailable(self.unreachable[host])
        proxied = parts.scheme in urllib.request.getproxies() and not urllib.request.proxy_bypass(host)
        why = None if proxied else resolves(host, self.timeout)
        if why is None:
            try:
                request = urllib.request.Request(url, headers={"User-Agent": "medisys-platform-setup"})
                return urllib.request.urlopen(request, timeout=self.timeout)
            except urllib.error.HTTPError as error:
                raise Unavailable(f"HTTP {error.code} for {url}") from None
            except (urllib.error.URLError, OSError) as error:
                reason = getattr(error, "reason", error)
                why = f"{host}: {reason}"
        self.unreachable[host] = why
        raise Unavailable(why)

    def text(self, url: str) -> str:
        with self.open(url) as response:
            try:
                return response.read(1 << 20).decode("utf-8", "replace")
            except OSError as error:
                raise Unavailable(f"reading {url}: {error}") from None

    def download(self, url: str, target: Path) -> str:
        """Writes URL to TARGET and returns its SHA-256."""
        digest = hashlib.sha256()
        partial = target.with_name(target.name + ".partial")
        started = time.monotonic()
        with self.open(url) as response, open(partial, "wb") as out:
            try:
                while chunk := response.read(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
                    if time.monotonic() - started > TOTAL_SECONDS:
                        raise Unavailable(f"{url}: not complete after {TOTAL_SECONDS}s")
            except OSError as error:
                raise Unavailable(f"reading {url}: {error}") from None
        os.replace(partial, target)
        return digest.hexdigest()


def fetch_verified(net: Net, sources: list[Source], archive: str, sums_name: str, directory: Path) -> Path:
    """The first source's ARCHIVE whose SHA-256 is the one its SUMS_NAME publishes."""
    reasons = []
    for source in sources:
        try:
            expected = parse_sums(net.text(f"{source.sums_base}/{sums_name}")).get(archive)
            if expected is None:
                raise Refused(f"{source.sums_base}/{sums_name} lists no sum for {archive}")
            target = directory / archive
            actual = net.download(f"{source.archive_base}/{archive}", target)
        except Unavailable as error:
            reasons.append(str(error))
            continue
        if actual != expected:
            target.unlink(missing_ok=True)
            raise Refused(f"checksum mismatch for {source.archive_base}/{archive}: "
                          f"{sums_name} says sha256 {expected[:16]}..., the download is {actual[:16]}...: refused")
        return target
    raise Unavailable("; ".join(dict.fromkeys(reasons)))


def net_from_environment() -> Net:
    return Net(timeout=float(os.environ.get("MEDISYS_DOWNLOAD_TIMEOUT") or 5))


def offline() -> bool:
    return os.environ.get("MEDISYS_OFFLINE", "") not in ("", "0", "false")


def plugins(directory: Path, wanted: list[tuple[str, str]]) -> list[tuple[str, str, str, str]]:
    """(name, version, "upstream" | "stand-in", tarball | reason) per plugin."""
    if offline():
        return [(name, version, "stand-in", "not tried: MEDISYS_OFFLINE is set") for name, version in wanted]
    try:
        overrides = parse_overrides(os.environ.get(OVERRIDES_VARIABLE, ""))
    except ValueError as error:
        return [(name, version, "stand-in", str(error)) for name, version in wanted]
    net = net_from_environment()
    directory.mkdir(parents=True, exist_ok=True)
    results = []
    for name, version in wanted:
        archive = plugin_archive(name, version)
        try:
            path = fetch_verified(net, plugin_sources(name, version, overrides), archive, plugin_sums(name, version), directory)
        except Unavailable as error:
            results.append((name, version, "stand-in", f"downloads unreachable: {error}"))
            continue
        except Refused as error:
            log(f"{name} {version}: {error}")
            results.append((name, version, "stand-in", str(error)))
            continue
        except Exception as error:  # noqa: BLE001 - whatever goes wrong here, the offline path must still work
            results.append((name, version, "stand-in", f"download failed unexpectedly: {error!r}"))
            continue
        log(f"{name} {version}: downloaded {archive}, sha256 verified")
        results.append((name, version, "upstream", str(path)))
    return results


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "plugins":
        wanted = [tuple(item.split("=", 1)) for item in argv[2:]]
        for name, version, kind, detail in plugins(Path(argv[1]), [(w[0], w[1]) for w in wanted]):
            print(f"{name}\t{version}\t{kind}\t{detail}", flush=True)
        return 0
    if len(argv) == 3 and argv[0] == "cli":
        if offline():
            print("not tried: MEDISYS_OFFLINE is set", file=sys.stderr)
            return 1
        directory = Path(argv[1])
        directory.mkdir(parents=True, exist_ok=True)
        version = argv[2]
        try:
            path = fetch_verified(net_from_environment(), cli_sources(version), cli_archive(version),
                                  f"pulumi-{version}-checksums.txt", directory)
        except (Unavailable, Refused) as error:
            print(error, file=sys.stderr)
            return 1
        print(path)
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
