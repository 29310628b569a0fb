"""A CI log shows the set-up's progress as it happens: with stdout a pipe, each toolchain line
reaches the reader while the step is still running, not in one block at its end.

scripts/bootstrap runs here in a scratch copy of the checkout whose toolchain step is a stand-in
that prints a line, works for a while and prints another, and whose venvs and images are already
up to date, so only the bootstrap's own plumbing is under test."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from pathlib import Path

from tests.ci.conftest import ROOT

STEP_SECONDS = 3


def lock_of(*files: Path) -> str:
    """The marker scripts/bootstrap keeps in an up-to-date venv: sha256 of its pin files, 16 hex."""
    return hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()[:16]


def scratch_checkout(root: Path) -> None:
    (root / "scripts" / "lib").mkdir(parents=True)
    (root / "policies").mkdir()
    (root / "images" / "lint").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "bootstrap", root / "scripts" / "bootstrap")
    for pins in ("requirements.txt", "requirements.lock", "policies/requirements.txt",
                 "images/lint/requirements.txt", "images/lint/requirements.lock"):
        shutil.copy(ROOT / pins, root / pins)
    for venv, pins in (("venv", ("requirements.txt", "requirements.lock")), ("policies/venv", ("policies/requirements.txt",)),
                       ("images/lint/venv", ("images/lint/requirements.txt", "images/lint/requirements.lock"))):
        (root / venv).mkdir(parents=True)
        (root / venv / ".medisys-lock").write_text(lock_of(*(root / p for p in pins)) + "\n")
    (root / "scripts" / "lib" / "toolchain.sh").write_text(
        "echo '[toolchain] step one ...' >&2\n"
        f"sleep {STEP_SECONDS}\n"
        "echo '[toolchain] providers: stand-ins docker 5.2.0 (test)' >&2\n"
        "echo 'export PULUMI_HOME=/nowhere'\n")
    (root / "scripts" / "build-images").write_text("echo '[build-images] nothing to build'\n")


def test_toolchain_lines_reach_a_pipe_while_the_step_runs(tmp_path: Path) -> None:
    root = tmp_path / "checkout"
    scratch_checkout(root)
    env = {**os.environ, "MEDISYS_CACHE": str(tmp_path / "cache")}
    process = subprocess.Popen(["bash", str(root / "scripts" / "bootstrap"), "--for", "test"], cwd=root, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    arrivals = {}
    for line in process.stdout:
        arrivals[line.strip()] = time.monotonic()
    assert process.wait(timeout=60) == 0, arrivals
    first, last = arrivals["[toolchain] step one ..."], arrivals["[toolchain] providers: stand-ins docker 5.2.0 (test)"]
    # The first line came through the pipe before the step's work was over.
    assert last - first > STEP_SECONDS - 1, arrivals
    # And the bootstrap keeps the providers line for `make up`.
    assert (root / ".state" / "providers").read_text() == "providers: stand-ins docker 5.2.0 (test)\n"
