"""Who may use which route: one row per (method, path) in each page module's `ACCESS`.

A route without a row is refused (and `tests/console/test_roles.py` fails), so a new page
cannot be added without saying who may see it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal

Role = Literal["admin", "editor", "viewer"]
Access = frozenset[str]

PUBLIC: Access = frozenset({"public"})
"""Anyone, signed in or not (sign-in, language, accessibility statement)."""

EVERYONE: Access = frozenset({"admin", "editor", "viewer"})
"""Any signed-in staff member."""

MANAGERS: Access = frozenset({"admin", "editor"})
"""Those who change things; editors only within their agency (checked by the page)."""

ADMINS: Access = frozenset({"admin"})

READERS: Access = frozenset({"admin", "viewer"})
"""Those who read across every agency."""

Table = Mapping[tuple[str, str], Access]


def merge(tables: Iterable[Table]) -> dict[tuple[str, str], Access]:
    """One table from every page module's; a route claimed twice is a mistake."""
    merged: dict[tuple[str, str], Access] = {}
    for table in tables:
        for key, access in table.items():
            if key in merged:
                raise ValueError(f"route {key} has two rows in the role table")
            merged[key] = access
    return merged
