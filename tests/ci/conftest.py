"""Shared by the CI-configuration tests: the repository root and a pinned actionlint binary.

actionlint comes from the venv when a package put it there; otherwise it is built once from its
Go module (the official rhysd/actionlint source, checksummed by the Go module mirror) into the
project's cache, next to the Pulumi toolchain. A wheel that downloads the release binary at
install time cannot be installed on machines that only reach the package registries.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ACTIONLINT_VERSION = "1.7.12"
ACTIONLINT_MODULE = "github.com/rhysd/actionlint/cmd/actionlint"


def _cache() -> Path:
    return Path(os.environ.get("MEDISYS_CACHE") or Path.home() / ".cache" / "medisys-platform")


def _build_actionlint(target: Path) -> None:
    go = shutil.which("go")
    if go is None:
        pytest.fail(
            f"actionlint is not in the venv and Go is not on PATH to build it: install Go, or put an "
            f"actionlint binary (v{ACTIONLINT_VERSION}) at {target}"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    cache = _cache() / "go"
    with tempfile.TemporaryDirectory(dir=target.parent) as staging:
        env = {
            **os.environ,
            "GOBIN": staging,
            "GOPATH": str(cache / "path"),
            "GOMODCACHE": str(cache / "mod"),
            "GOCACHE": str(cache / "build"),
            "GOFLAGS": "-buildvcs=false",
        }
        done = subprocess.run(
            [go, "install", f"{ACTIONLINT_MODULE}@v{ACTIONLINT_VERSION}"], env=env, capture_output=True, text=True, timeout=900, check=False
        )
        if done.returncode != 0:
            pytest.fail(
                f"could not build actionlint v{ACTIONLINT_VERSION} from its Go module "
                f"(check that the Go module proxy is reachable):\n{done.stderr[-2000:]}"
            )
        # Moved into place only when complete, so an interrupted build is simply redone.
        os.replace(Path(staging) / "actionlint", target)


@pytest.fixture(scope="session")
def actionlint() -> str:
    in_venv = shutil.which("actionlint", path=str(Path(sys.executable).parent))
    if in_venv:
        return in_venv
    cached = _cache() / "tools" / f"actionlint-{ACTIONLINT_VERSION}" / "actionlint"
    if not os.access(cached, os.X_OK):
        _build_actionlint(cached)
    return str(cached)
