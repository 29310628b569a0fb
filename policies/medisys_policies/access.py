"""Tolerant reads from the property proxies that pulumi-policy hands to policies.

`args.props` is not a dict: it is a read-only ``Mapping`` proxy (``isinstance(props, dict)`` is
False) whose ``__getitem__`` raises ``pulumi_policy.proxy.UnknownValueError`` when the value is
unknown during preview. ``props.get(k)`` and ``k in props`` raise as well, because ``Mapping``
implements them with ``__getitem__``; iterating over the keys is safe.

The helpers here never raise ``KeyError``/``IndexError``/``TypeError`` for a missing or
mis-shaped field (an uncaught exception would fail the whole preview). What happens on an
unknown value is the caller's choice: by default ``UnknownValueError`` propagates, so the
policy framework can either fail closed or let the engine report "can't run policy".
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final

from pulumi_policy.proxy import UnknownValueError

__all__ = [
    "UNKNOWN",
    "Path",
    "UnknownValueError",
    "as_bool",
    "as_number",
    "as_str",
    "elements",
    "get",
    "is_mapping",
    "is_sequence",
    "peek",
]


class _Unknown:
    """Marker returned by `peek` for a value that cannot be known during preview (one instance:
    compare with `is UNKNOWN`)."""

    def __repr__(self) -> str:
        return "<unknown during preview>"

    def __bool__(self) -> bool:
        return False


UNKNOWN: Final = _Unknown()

Path = str | int


def is_mapping(value: Any) -> bool:
    return isinstance(value, Mapping)


def is_sequence(value: Any) -> bool:
    """A list-like value (the proxies are `Sequence`s, not lists); strings do not count."""
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


def _step(value: Any, key: Path) -> tuple[bool, Any]:
    """One step of a path walk. Returns (found, child); raises UnknownValueError."""
    if isinstance(key, str):
        if not is_mapping(value):
            return False, None
        # Iterating keys never touches values, so this membership test is unknown-safe.
        if key not in list(value.keys()):
            return False, None
        return True, value[key]
    if not is_sequence(value) or not -len(value) <= key < len(value):
        return False, None
    return True, value[key]


def get(obj: Any, *path: Path, default: Any = None) -> Any:
    """Walk `path` (keys and list indices). Missing, null or mis-shaped steps give `default`.

    Raises `UnknownValueError` when a step is unknown during preview.
    """
    value = obj
    for key in path:
        found, value = _step(value, key)
        if not found or value is None:
            return default
    return value


def peek(obj: Any, *path: Path, default: Any = None) -> Any:
    """Like `get`, but returns `UNKNOWN` instead of raising for an unknown value."""
    try:
        return get(obj, *path, default=default)
    except UnknownValueError:
        return UNKNOWN


def elements(seq: Any) -> Iterator[tuple[int, Any]]:
    """Yield (index, element) of a list-like value; nothing for a missing or non-list value.

    Each element is read separately, so an unknown element raises `UnknownValueError` with
    its own index in the path, and the known elements before it have been yielded already.
    """
    if not is_sequence(seq):
        return
    for index in range(len(seq)):
        yield index, seq[index]


def as_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def as_bool(value: Any) -> bool:
    """Truthiness the way Docker/Terraform read it: True, "true", "1", "yes", "on"."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value.strip().lower() in {"true", "1", "yes", "on"}
    if isinstance(value, (int, float)):
        return value != 0
    return False


def as_number(value: Any) -> float | None:
    """A number from an int, a float (protobuf sends every number as float) or a numeric string."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None
