"""Canonical JSON, fast: the bytes `json.dumps(value, sort_keys=True, separators=(",", ":"),
allow_nan=False)` writes, from an encoder built once.

Why a module of its own: `json.dumps` builds an encoder and a C encoder on every call, which
showed in the events intake's profile (one payload hash per event). Building the C encoder
once means calling `json.encoder.c_make_encoder`, a private CPython name; it lives here, behind
one function, so business code never touches it and a Python without it still works."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), allow_nan=False)
_MAKE_C_ENCODER: Callable[..., Callable[[Any, int], tuple[str, ...]]] | None = getattr(
    json.encoder, "c_make_encoder", None
)
# No cycle check (markers None): what is encoded here is parsed JSON, which has no cycles.
_C_CANONICAL = (
    None
    if _MAKE_C_ENCODER is None
    else _MAKE_C_ENCODER(
        None,
        _CANONICAL.default,
        json.encoder.encode_basestring_ascii,
        None,
        ":",
        ",",
        True,
        False,
        False,
    )  # markers, default, encoder, indent, separators, sort_keys, skipkeys, allow_nan
)


def canonical_json(value: Mapping[str, Any]) -> bytes:
    """`value` as canonical JSON: sorted keys, no spaces, ASCII; ValueError for a number that
    is not finite, which JSON cannot hold."""
    if _C_CANONICAL is None:  # pragma: no cover - CPython always has the C encoder
        return _CANONICAL.encode(value).encode()
    return "".join(_C_CANONICAL(value, 0)).encode()


def uses_c_encoder() -> bool:
    """Whether the fast path is in use (CPython's C encoder was found)."""
    return _C_CANONICAL is not None
