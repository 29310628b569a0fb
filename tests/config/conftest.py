"""Config tests run the real tools on rendered files inside the project's own service images."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

RELEASE = (Path(__file__).resolve().parents[2] / "images" / "RELEASE").read_text().strip()


def image(service: str) -> str:
    name = f"medisys/{service}:{RELEASE}"
    if subprocess.run(["docker", "image", "inspect", name], capture_output=True).returncode != 0:
        pytest.fail(f"image {name} is missing: build it with scripts/build-images (make test does)")
    return name


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        path.chmod(0o644)
    root.chmod(0o755)
    for directory in [p for p in root.rglob("*") if p.is_dir()]:
        directory.chmod(0o755)
    return root


def run_in_image(service: str, script: str, mounts: dict[Path, str], timeout: int = 180) -> subprocess.CompletedProcess[str]:
    """Runs a shell script in a service image with no network; each host dir mounted read-only."""
    volumes = [arg for host, target in mounts.items() for arg in ("-v", f"{host}:{target}:ro")]
    return subprocess.run(
        ["docker", "run", "--rm", "--network", "none", *volumes, "--entrypoint", "sh", image(service), "-c", script],
        capture_output=True, text=True, timeout=timeout,
    )
