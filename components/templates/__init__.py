"""Configuration files as templates, rendered by pure functions so tests can check them with the real tools."""

from __future__ import annotations

from pathlib import Path
from string import Template

TEMPLATE_DIR = Path(__file__).parent


def render(template_name: str, **values: object) -> str:
    """Fill a template; a missing value is an error, never an empty string in a config file."""
    template = Template((TEMPLATE_DIR / template_name).read_text())
    return template.substitute({k: str(v) for k, v in values.items()})
