"""Tolerant reads from the property proxies that pulumi-policy hands to policies.

`args.props` is not a dict: it is a read-only ``Mapping`` proxy (``isinstance(props, dict)`` is
False) whose ``__getitem__`` raises ``pulumi_policy.proxy.UnknownValueError`` when the value is
unknown during preview. ``props.get(k)`` and ``k in props`` raise as well, because ``Mapping``
implements them with ``__getitem__``; iterating over the keys is safe.

The helpers here never raise ``KeyError``/``IndexError``/``TypeError`` for a missing or
mis-shaped field (an uncaught exception would fail the whole preview).

Unknown values are not the checks' business: the framework hands every check its props through
`watch`, which records each unknown value read (the path from the resource's top) before the
error reaches the check. The framework then fails the policy closed for every recorded unknown,
even when the check caught the error or used `peek`, so no check can treat an unknown as absent.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final

from pulumi_policy.proxy import (
    UNKNOWN_ARCHIVE_VALUE,
    UNKNOWN_ARRAY_VALUE,
    UNKNOWN_ASSET_VALUE,
    UNKNOWN_BOOLEAN_VALUE,
    UNKNOWN_NUMBER_VALUE,
    UNKNOWN_OBJECT_VALUE,
    UNKNOWN_STRING_VALUE,
    UnknownValueError,
)

__all__ = [
    "UNKNOWN",
    "Path",
    "UnknownReads",
    "UnknownValueError",
    "as_bool",
    "as_number",
    "as_str",
    "elements",
    "get",
    "is_mapping",
    "is_sequence",
    "peek",
    "watch",
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
    """Like `get`, but returns `UNKNOWN` instead of raising for an unknown value, so a check can
    go on looking for other problems. The read is still recorded by `watch`: the policy still
    fails closed on it."""
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


# The wire sentinels of unknown values (pulumi_policy.proxy); a raw sentinel reaching a check
# (remediation hands props over without the raising proxy) counts as unknown too.
_SENTINELS: Final = frozenset(
    {
        UNKNOWN_BOOLEAN_VALUE,
        UNKNOWN_NUMBER_VALUE,
        UNKNOWN_STRING_VALUE,
        UNKNOWN_ARRAY_VALUE,
        UNKNOWN_ASSET_VALUE,
        UNKNOWN_ARCHIVE_VALUE,
        UNKNOWN_OBJECT_VALUE,
    }
)


class UnknownReads:
    """The unknown values the checks of one policy run read: (owner, property path) in the
    order they were first read. `owner` is whatever `watch` was given (the resource)."""

    def __init__(self) -> None:
        self.active = True
        self._seen: dict[tuple[int, tuple[str, ...]], tuple[Any, tuple[str, ...]]] = {}

    def record(self, owner: Any, path: Sequence[Any]) -> None:
        if self.active:
            key = tuple(str(part) for part in path)
            self._seen.setdefault((id(owner), key), (owner, key))

    def __iter__(self) -> Iterator[tuple[Any, tuple[str, ...]]]:
        return iter(list(self._seen.values()))

    def __bool__(self) -> bool:
        return bool(self._seen)


def _watched(value: Any, path: tuple[str, ...], reads: UnknownReads, owner: Any) -> Any:
    if isinstance(value, str) and value in _SENTINELS:
        reads.record(owner, path)
        raise UnknownValueError(value, list(path))
    if isinstance(value, Mapping):
        return _WatchedMapping(value, path, reads, owner)
    if is_sequence(value):
        return _WatchedSequence(value, path, reads, owner)
    return value


class _WatchedMapping(Mapping):  # type: ignore[type-arg]
    def __init__(self, target: Mapping[str, Any], path: tuple[str, ...], reads: UnknownReads, owner: Any):
        self._target, self._path, self._reads, self._owner = target, path, reads, owner

    def __getitem__(self, key: str) -> Any:
        path = (*self._path, str(key))
        try:
            value = self._target[key]
        except UnknownValueError:
            self._reads.record(self._owner, path)
            raise
        return _watched(value, path, self._reads, self._owner)

    def __iter__(self) -> Iterator[str]:
        return iter(self._target)

    def __len__(self) -> int:
        return len(self._target)


class _WatchedSequence(Sequence):  # type: ignore[type-arg]
    def __init__(self, target: Sequence[Any], path: tuple[str, ...], reads: UnknownReads, owner: Any):
        self._target, self._path, self._reads, self._owner = target, path, reads, owner

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(len(self._target))[index]]
        path = (*self._path, str(index % len(self._target) if isinstance(index, int) and len(self._target) else index))
        try:
            value = self._target[index]
        except UnknownValueError:
            self._reads.record(self._owner, path)
            raise
        return _watched(value, path, self._reads, self._owner)

    def __len__(self) -> int:
        return len(self._target)


def watch(
    props: Mapping[str, Any], reads: UnknownReads, owner: Any = None, prefix: tuple[str, ...] = ()
) -> Mapping[str, Any]:
    """`props` as checks see them: every unknown value read is recorded in `reads` (with its
    path from the top of `props`, after `prefix`) before `UnknownValueError` reaches the reader.
    `prefix` names where the props hang from the owner, e.g. ("provider",) for the props of the
    provider a resource is created through, so a message says `provider.host`."""
    return _WatchedMapping(props, tuple(prefix), reads, owner)
