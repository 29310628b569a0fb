"""The service images build the same next month, and their Dockerfiles pass hadolint and checkov.

- Every `apt-get install` in images/*/Dockerfile names each package at an exact version, the
  version images/packages.lock pins (so a new package cannot slip in unpinned), and the lock
  covers every package installed in every built image, dependencies and base packages included.
- A build that would install a package the lock does not pin fails, naming it.
- A pin the mirror no longer serves stops scripts/build-images before anything is built, naming
  the package, the pinned version, what the mirror has now and how to update the pins.
- hadolint and checkov (images/lint/venv, made by scripts/bootstrap) find nothing; the rules they
  are told to skip are in images/lint/hadolint.yaml and checkov.yaml, each with its reason.

The tests that ask the mirror or the engine need docker and the base image; the rest need neither.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.config.conftest import RELEASE, image

ROOT = Path(__file__).resolve().parents[2]
LINT = ROOT / "images" / "lint"
LINT_BIN = LINT / "venv" / "bin"
DOCKERFILES = sorted((ROOT / "images").glob("*/Dockerfile"))

_spec = importlib.util.spec_from_file_location("image_pins", ROOT / "scripts" / "image_pins.py")
assert _spec is not None and _spec.loader is not None
pins_tool = importlib.util.module_from_spec(_spec)
sys.modules["image_pins"] = pins_tool
_spec.loader.exec_module(pins_tool)

needs_docker = pytest.mark.skipif(shutil.which("docker") is None, reason="no docker command: the mirror is asked from a container")


def tool(name: str) -> str:
    path = LINT_BIN / name
    if not path.exists():
        pytest.fail(f"{path} is missing: run scripts/bootstrap (it installs images/lint/requirements.txt into images/lint/venv)")
    return str(path)


def services() -> list[str]:
    return [df.parent.name for df in DOCKERFILES]


# ---- pins, without docker ----------------------------------------------------------------------------


def test_every_apt_get_install_in_every_dockerfile_is_pinned_as_the_lock_says():
    assert len(DOCKERFILES) >= 9
    pins = pins_tool.read_lock()
    assert pins_tool.lint(pins) == []
    named = {spec for df in DOCKERFILES for install in pins_tool.installs(df) for spec in install.packages}
    assert {"haproxy", "postgresql-17", "redis-server", "prometheus", "etcd-server"} <= {s.split("=")[0] for s in named}
    for df in DOCKERFILES:
        assert pins_tool.installs(df), f"{df} installs no Debian package: the parser missed it"


def test_the_pin_lint_catches_an_unpinned_package_a_wrong_version_and_a_missing_pins_argument(tmp_path, monkeypatch):
    images = tmp_path / "images"
    (images / "one").mkdir(parents=True)
    (images / "two").mkdir()
    (images / "one" / "Dockerfile").write_text(
        "FROM debian:trixie-slim\nARG APT_PINS\nRUN set -eux; \\\n    apt-get update; \\\n"
        "    apt-get install -y --no-install-recommends \\\n        curl=1.0-1 jq; \\\n    rm -rf /var/lib/apt/lists/*\n"
    )
    (images / "two" / "Dockerfile").write_text("FROM debian:trixie-slim\nRUN apt-get update && apt-get install -y curl=2.0-1\n")
    monkeypatch.setattr(pins_tool, "ROOT", tmp_path)
    monkeypatch.setattr(pins_tool, "IMAGES", images)
    problems = "\n".join(pins_tool.lint({"curl": "1.0-1", "jq": "1.7-1"}))
    assert "images/one/Dockerfile:3: 'jq' is not pinned: write it as jq=<version>" in problems
    assert "images/two/Dockerfile:2: curl=2.0-1, but images/packages.lock pins curl=1.0-1" in problems
    assert "images/two/Dockerfile: installs Debian packages without the pinning steps ['ARG APT_PINS'" in problems
    assert "images/one/Dockerfile: installs Debian packages without the pinning steps ['>/etc/apt/preferences.d/medisys-pins'" in problems
    assert len(pins_tool.lint({"curl": "1.0-1", "jq": "1.7-1"})) == 4


def test_the_lock_rejects_a_malformed_line_and_a_package_pinned_twice(tmp_path):
    bad = tmp_path / "packages.lock"
    bad.write_text("# comment\ncurl=8.14.1-2\ncurl 8.14.1-2\n")
    with pytest.raises(pins_tool.PinError, match=r"packages.lock:3: 'curl 8.14.1-2' is not 'package=version'"):
        pins_tool.read_lock(bad)
    bad.write_text("curl=8.14.1-2\ncurl=8.14.1-3\n")
    with pytest.raises(pins_tool.PinError, match="curl is pinned twice"):
        pins_tool.read_lock(bad)


def test_a_version_the_mirror_no_longer_serves_is_named_with_what_it_serves_now():
    madison = (
        "   haproxy | 3.0.11-1+deb13u5 | http://deb.debian.org/debian-security trixie-security/main amd64 Packages\n"
        "   haproxy | 3.0.11-1+deb13u4 | http://deb.debian.org/debian trixie/main amd64 Packages\n"
        "      curl | 8.14.1-2+deb13u7 | http://deb.debian.org/debian trixie/main amd64 Packages\n"
    )
    served = pins_tool.parse_madison(madison)
    assert served == {"haproxy": ["3.0.11-1+deb13u5", "3.0.11-1+deb13u4"], "curl": ["8.14.1-2+deb13u7"]}
    pins = {"haproxy": "3.0.10-1", "curl": "8.14.1-2+deb13u7", "socat": "1.8.0.3-1"}
    assert pins_tool.stale_pins(pins, served) == [
        "haproxy=3.0.10-1 is not served by the mirror; available now: 3.0.11-1+deb13u5, 3.0.11-1+deb13u4",
        "socat=1.8.0.3-1 is not served by the mirror; available now: nothing (the package is gone from the suite)",
    ]
    # A base package at another version is moved to its pin by every build; one not pinned at all is reported.
    assert pins_tool.base_drift({"libc6": "2.41-12"}, {"libc6": "2.41-13", "bash": "5.2"}) == [
        "the base image has bash=5.2, which the lock does not pin",
    ]


# ---- pins against the mirror and the built images ------------------------------------------------------


@needs_docker
def test_the_mirror_serves_every_pinned_version_and_the_base_image_matches_the_lock():
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "image_pins.py"), "check"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "the mirror serves all" in result.stdout


@needs_docker
def test_build_images_stops_on_a_pin_gone_from_the_mirror_and_says_which_and_how_to_update(tmp_path):
    lock = pins_tool.read_lock()
    stale = tmp_path / "packages.lock"
    stale.write_text("".join(f"{n}={'3.0.1-1' if n == 'haproxy' else v}\n" for n, v in sorted(lock.items())))
    tag = image("haproxy")
    before = subprocess.run(["docker", "image", "inspect", "-f", "{{.Id}}", tag], capture_output=True, text=True).stdout
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "build-images"), "--no-smoke", "haproxy"],
        env={**os.environ, "MEDISYS_PACKAGES_LOCK": str(stale)},
        capture_output=True, text=True, timeout=600,
    )
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert f"haproxy=3.0.1-1 is not served by the mirror; available now: {lock['haproxy']}" in out
    assert "python3 scripts/image_pins.py update" in out
    assert "nothing was built" in out
    assert "building medisys/haproxy" not in out
    after = subprocess.run(["docker", "image", "inspect", "-f", "{{.Id}}", tag], capture_output=True, text=True).stdout
    assert before == after


@needs_docker
def test_a_build_that_installs_a_package_the_lock_does_not_pin_fails_and_says_so(tmp_path):
    """The pinning steps of a real Dockerfile (haproxy's), installing a package the lock lacks."""
    text = (ROOT / "images" / "haproxy" / "Dockerfile").read_text()
    start = text.index('SHELL ["/bin/bash"')
    end = text.index("    rm -rf /var/lib/apt/lists/*", start)
    steps = re.sub(r"(apt-get install -y --no-install-recommends \\\n\s+)[^;]+;", r"\1less;", text[start:end])
    assert "less;" in steps and "haproxy=" not in steps
    assert "less" not in pins_tool.read_lock()
    label = "medisys.test=image-pins-unpinned-package"
    (tmp_path / "Dockerfile").write_text(f"FROM {pins_tool.BASE_IMAGE}\nLABEL {label}\n{steps}    true\n")
    try:
        result = subprocess.run(
            ["docker", "build", "--rm", "--force-rm", "--build-arg", f"APT_PINS={pins_tool.build_arg()}", "-q", str(tmp_path)],
            capture_output=True, text=True, timeout=600, env={**os.environ, "DOCKER_BUILDKIT": "0"},
        )
    finally:  # the steps before the failing one stay behind as untagged images
        subprocess.run(["docker", "image", "prune", "-f", "--filter", f"label={label}"], capture_output=True, timeout=120)
    out = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout + result.stderr)  # the classic builder colours stderr
    assert result.returncode != 0, out
    assert re.search(r"^less=\S+$", out, re.M), out[-3000:]
    assert "installed at versions images/packages.lock does not pin: run python3 scripts/image_pins.py update" in out


@needs_docker
@pytest.mark.parametrize("service", services())
def test_every_package_in_the_built_image_is_at_its_pinned_version(service):
    tag = image(service)
    listed = subprocess.run(
        ["docker", "run", "--rm", "--network", "none", "--entrypoint", "dpkg-query", tag,
         "-W", "-f", "${db:Status-Status} ${Package} ${Version}\n"],
        capture_output=True, text=True, timeout=120,
    )
    assert listed.returncode == 0, listed.stderr
    installed = dict(line.split()[1:] for line in listed.stdout.splitlines() if line.startswith("installed "))
    lock = pins_tool.read_lock()
    off = {name: version for name, version in installed.items() if lock.get(name) != version}
    assert off == {}, f"{tag} has packages the lock does not pin at these versions (rebuild it with scripts/build-images)"
    labels = subprocess.run(["docker", "image", "inspect", "-f", "{{index .Config.Labels \"org.opencontainers.image.version\"}}", tag],
                            capture_output=True, text=True).stdout.strip()
    assert labels == RELEASE


# ---- hadolint and checkov ----------------------------------------------------------------------------


def _reasons(config: Path, rule: str) -> list[str]:
    """Each `- RULE` entry of a linter config must follow a comment that explains it."""
    lines = config.read_text().splitlines()
    missing = []
    for i, line in enumerate(lines):
        match = re.match(rf"^\s*-\s*({rule})\s*$", line)
        if match and not (i > 0 and lines[i - 1].strip().startswith("#") and len(lines[i - 1].split()) > 5):
            missing.append(match.group(1))
    return missing


def test_every_skipped_linter_rule_says_why():
    assert _reasons(LINT / "hadolint.yaml", r"DL\d+|SC\d+") == []
    assert _reasons(LINT / "checkov.yaml", r"CKV2?_[A-Z]+_\d+") == []


def test_hadolint_finds_nothing_in_the_dockerfiles():
    result = subprocess.run([tool("hadolint"), "--config", str(LINT / "hadolint.yaml"), "--no-color", *map(str, DOCKERFILES)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_with_the_project_settings_fails_an_unpinned_install(tmp_path):
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(
        "FROM debian:trixie-slim\n"
        "RUN apt-get update && apt-get install -y --no-install-recommends curl && rm -rf /var/lib/apt/lists/*\n"
        "USER 1000\n"
    )
    result = subprocess.run([tool("hadolint"), "--config", str(LINT / "hadolint.yaml"), "--no-color", str(dockerfile)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "DL3008" in result.stdout


def test_checkov_finds_nothing_in_the_dockerfiles():
    result = subprocess.run(
        [tool("checkov"), "--config-file", str(LINT / "checkov.yaml"), "--quiet", "-o", "json", "-f", *map(str, DOCKERFILES)],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )
    report = json.loads(result.stdout)
    summary = report["summary"]
    assert summary["resource_count"] == len(DOCKERFILES), summary
    assert summary["failed"] == 0 and summary["parsing_errors"] == 0, result.stdout[-4000:]
    assert summary["passed"] > 100
    assert result.returncode == 0


def test_checkov_with_the_project_settings_fails_a_dockerfile_that_runs_as_root(tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM debian:trixie-slim\nRUN echo hi\n")
    result = subprocess.run(
        [tool("checkov"), "--config-file", str(LINT / "checkov.yaml"), "-f", str(tmp_path / "Dockerfile"), "--quiet", "--compact"],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode != 0
    assert "CKV_DOCKER_3" in result.stdout
    assert "CKV_DOCKER_2" not in result.stdout
