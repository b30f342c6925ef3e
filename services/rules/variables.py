"""Which variables a template text reads that an event does not have (pure; no I/O).

Rendering with `StrictUndefined` stops at the first missing variable and names only its last
part ("'dict object' has no attribute 'nmae'"); a live preview should name every one with its
whole path (`citizen.nmae`). The text's syntax tree gives each dotted path it reads; each is
looked up in the variables. Attributes of values that are not mappings (a date's `year`, a
string's `upper`) are left to the renderer.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Any

from jinja2 import Environment, TemplateError, meta, nodes

from services.rules.rendering import SampleData


@lru_cache(maxsize=1)
def _parser() -> Environment:
    """An environment that only parses (nothing is rendered with it); it knows the renderer's
    own filters by name so texts using them parse."""
    environment = Environment(autoescape=True)
    environment.filters.update(fecha=str, numero=str)
    return environment


def _chain(node: nodes.Node) -> list[str] | None:
    """`citizen.name` or `data["x"]` as its parts, when the chain starts at a plain name."""
    if isinstance(node, nodes.Name):
        return [node.name]
    if isinstance(node, nodes.Getattr):
        head = _chain(node.node)
        return [*head, node.attr] if head is not None else None
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
        head = _chain(node.node)
        key = node.arg.value
        return [*head, key] if head is not None and isinstance(key, str) else None
    return None


def _paths(node: nodes.Node) -> Iterator[list[str]]:
    chain = _chain(node)
    if chain is not None:
        yield chain
        return
    for child in node.iter_child_nodes():
        yield from _paths(child)


def _missing(parts: list[str], variables: Mapping[str, Any]) -> str | None:
    """The path up to its first part that does not exist, or None when it resolves."""
    value: Any = variables
    for index, part in enumerate(parts):
        if isinstance(value, SampleData) or not isinstance(value, Mapping):
            return None
        if part not in value:
            return ".".join(parts[: index + 1])
        value = value[part]
    return None


def undefined_variables(source: str, variables: Mapping[str, Any]) -> list[str]:
    """The dotted paths `source` reads that `variables` lack, in order of first use; [] when
    the text does not parse (rendering reports that)."""
    try:
        tree = _parser().parse(source)
        free = meta.find_undeclared_variables(tree)  # names the text does not set itself
    except TemplateError:
        return []
    found: dict[str, None] = {}
    for parts in _paths(tree):
        if parts[0] in free:
            missing = _missing(parts, variables)
            if missing is not None:
                found.setdefault(missing)
    return list(found)
