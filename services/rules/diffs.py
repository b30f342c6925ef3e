"""Differences between two versions of a rule or template document (pure; no I/O).

Nested objects are compared key by key, so a change reads `locales.es.sms` or
`schedule.at`; lists and plain values are compared whole (`schedule.offsets` changed from
one list to another), which is how an admin reads them.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

ADDED, REMOVED, CHANGED = "added", "removed", "changed"


@dataclass(frozen=True, slots=True)
class Change:
    """One field that differs: its dotted path, how, and its values before and after."""

    path: str
    op: str
    old: Any = None
    new: Any = None


def _walk(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str) -> Iterator[Change]:
    for key in [*old, *(k for k in new if k not in old)]:
        path = f"{prefix}.{key}" if prefix else str(key)
        if key not in new:
            yield Change(path, REMOVED, old=old[key])
        elif key not in old:
            yield Change(path, ADDED, new=new[key])
        elif isinstance(old[key], Mapping) and isinstance(new[key], Mapping):
            yield from _walk(old[key], new[key], path)
        elif old[key] != new[key]:
            yield Change(path, CHANGED, old=old[key], new=new[key])


def changes(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> list[Change]:
    """What changed from `old` to `new` (None: the document did not exist), in field order."""
    return list(_walk(old or {}, new or {}, ""))


def as_yaml(document: Mapping[str, Any] | None) -> str:
    """The document as the YAML files spell it (field order kept; empty when None)."""
    if document is None:
        return ""
    return yaml.safe_dump(dict(document), sort_keys=False, allow_unicode=True)


def unified(
    old: Mapping[str, Any] | None, new: Mapping[str, Any] | None, *, old_name: str, new_name: str
) -> str:
    """A unified diff of the two documents as YAML, for people to read."""
    lines = difflib.unified_diff(
        as_yaml(old).splitlines(keepends=True),
        as_yaml(new).splitlines(keepends=True),
        fromfile=old_name,
        tofile=new_name,
    )
    return "".join(lines)
