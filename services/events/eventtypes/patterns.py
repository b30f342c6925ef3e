"""Agency schemas' regular expressions, evaluated by RE2 (linear time) instead of Python's `re`.

jsonschema evaluates `pattern` and `patternProperties` with Python's backtracking engine, so
an agency's `"pattern": "^(a+)+$"` took 17.5 s to check `"a" * 28 + "!"` while the service
waited. Here those keywords (and `additionalProperties`, which reads `patternProperties`)
run on RE2; what RE2 cannot compile (backreferences, lookaround) is refused when the schema
is registered. `unevaluatedProperties` evaluates `patternProperties` with `re` inside
jsonschema, so a schema may not use both.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from typing import Any

import re2
from jsonschema import validators
from jsonschema.exceptions import ValidationError
from jsonschema.protocols import Validator

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # a refused pattern is the agency's error, answered with a 422
_NOT_SCHEMAS = frozenset({"enum", "const", "examples", "default"})

PatternError: type[Exception] = re2.error
"""What evaluating a pattern RE2 cannot compile raises."""


@functools.lru_cache(maxsize=4096)
def compiled(pattern: str) -> Any:
    """The RE2 program of a pattern (re2.error when RE2 cannot compile it)."""
    return re2.compile(pattern, _OPTIONS)


def _search(pattern: str, text: str) -> bool:
    return compiled(pattern).search(text) is not None


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not _search(pattern, instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(
    validator: Any, patterns: Mapping[str, Any], instance: Any, schema: Any
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            if _search(pattern, key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional_keys(instance: Mapping[str, Any], schema: Mapping[str, Any]) -> list[str]:
    properties = schema.get("properties", {})
    patterns = list(schema.get("patternProperties", {}))
    return [
        key
        for key in instance
        if key not in properties and not any(_search(pattern, key) for pattern in patterns)
    ]


def _additional_properties(
    validator: Any, additional: Any, instance: Any, schema: Any
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    extras = _additional_keys(instance, schema)
    if validator.is_type(additional, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], additional, path=extra)
    elif not additional and extras:
        if "patternProperties" in schema:
            verb = "does" if len(extras) == 1 else "do"
            listed = ", ".join(map(repr, sorted(extras)))
            patterns = ", ".join(map(repr, sorted(schema["patternProperties"])))
            yield ValidationError(f"{listed} {verb} not match any of the regexes: {patterns}")
        else:
            listed = ", ".join(map(repr, sorted(extras, key=str)))
            were = "was" if len(extras) == 1 else "were"
            yield ValidationError(
                f"Additional properties are not allowed ({listed} {were} unexpected)"
            )


@functools.cache
def linear(cls: type[Validator]) -> type[Validator]:
    """`cls` with its regular-expression keywords evaluated by RE2."""
    extended: type[Validator] = validators.extend(
        cls,
        {
            "pattern": _pattern,
            "patternProperties": _pattern_properties,
            "additionalProperties": _additional_properties,
        },
    )
    return extended


def pattern_errors(schema: Any, path: tuple[str, ...] = ()) -> Iterator[dict[str, str]]:
    """`{path, message}` for every pattern RE2 cannot compile, and for `unevaluatedProperties`
    beside `patternProperties` (which jsonschema would evaluate with Python's `re`)."""
    if isinstance(schema, list):
        for index, item in enumerate(schema):
            yield from pattern_errors(item, (*path, f"[{index}]"))
        return
    if not isinstance(schema, Mapping):
        return
    patterns: list[tuple[tuple[str, ...], Any]] = []
    if isinstance(schema.get("pattern"), str):
        patterns.append(((*path, "pattern"), schema["pattern"]))
    if isinstance(schema.get("patternProperties"), Mapping):
        patterns += [
            ((*path, "patternProperties", key), key) for key in schema["patternProperties"]
        ]
    for where, pattern in patterns:
        try:
            compiled(pattern)
        except re2.error as error:
            yield {"path": _dotted(where), "message": f"RE2 cannot use this pattern: {error}"}
    for key, value in schema.items():
        if key not in _NOT_SCHEMAS:
            yield from pattern_errors(value, (*path, key))


def uses_both(schema: Any) -> bool:
    """Whether `unevaluatedProperties` and `patternProperties` both appear in the schema."""
    text = repr(schema)
    return "'unevaluatedProperties'" in text and "'patternProperties'" in text


def _dotted(path: tuple[str, ...]) -> str:
    return ".".join(path).replace(".[", "[")
