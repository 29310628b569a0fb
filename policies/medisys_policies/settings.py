"""Per-policy configuration with defaults applied in code.

The engine fills a policy's config from the schema ``default``s before it validates the
``--policy-pack-config`` file, but a policy called directly (unit tests, a raw servicer) gets
no defaults, and the config reaches Python through protobuf, so every number is a float.
`Settings` reads a key, falls back to the schema default when the key is missing or has the
wrong shape, and converts numbers, so each policy states its defaults exactly once: in its
schema.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .access import as_number

Schema = Mapping[str, Mapping[str, Any]]


class Settings:
    """Typed reads of one policy's config; the schema's defaults fill the gaps."""

    def __init__(self, raw: Mapping[str, Any] | None, schema: Schema) -> None:
        self._raw: Mapping[str, Any] = raw or {}
        self._schema = schema

    def _default(self, key: str) -> Any:
        if key not in self._schema or "default" not in self._schema[key]:
            raise KeyError(f"config key {key!r} has no default in the policy's schema")
        return self._schema[key]["default"]

    def _value(self, key: str) -> Any:
        value = self._raw.get(key)
        return self._default(key) if value is None else value

    def number(self, key: str) -> float:
        number = as_number(self._value(key))
        if number is None:
            number = as_number(self._default(key))
        return number if number is not None else 0.0

    def integer(self, key: str) -> int:
        return round(self.number(key))

    def text(self, key: str) -> str:
        value = self._value(key)
        return value if isinstance(value, str) else str(self._default(key))

    def flag(self, key: str) -> bool:
        value = self._value(key)
        return value if isinstance(value, bool) else bool(self._default(key))

    def texts(self, key: str) -> list[str]:
        value = self._value(key)
        if not isinstance(value, (list, tuple)):
            value = self._default(key)
        return [item for item in value if isinstance(item, str)]

    def mapping(self, key: str) -> Mapping[str, Any]:
        value = self._value(key)
        return value if isinstance(value, Mapping) else self._default(key)


def schema_defaults(schema: Schema) -> dict[str, Any]:
    """The defaults a schema declares, for docs and tests."""
    return {key: spec["default"] for key, spec in schema.items() if "default" in spec}
