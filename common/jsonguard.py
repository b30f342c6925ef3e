"""JSON a service must refuse at the door, whatever route it is for: nesting deeper than a
limit (Python's parser recurses, and a deep document ends in RecursionError, a 500 and a
closed connection), lone surrogate escapes (`"\\ud800"` parses, then cannot be encoded, so
the value fails later where it is stored or shown) and numbers out of a double's range
(`1e999` parses as infinity and is written back as `null` or `Infinity`).

`body_problem` checks raw bytes and costs two `bytes.count` calls for the common small body;
the intake calls it directly, every other route gets it through `JsonGuard`.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Iterator
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from common.problems import Problem, error_path, problem_response

log = logging.getLogger(__name__)

MAX_DEPTH = 64

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_INNERMOST = re.compile(rb"\[\]|\{\}")
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))
# Bodies worth parsing for the values below: a surrogate escape, a large exponent or a very
# long number, a JSON constant Python's parser takes (NaN, Infinity).
_SUSPECT = re.compile(rb"\\u[dD][89a-fA-F]|\d[eE]\+?\d{3}|\d{300}|NaN|Infinity")
_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")

SURROGATE_MESSAGE = "a lone surrogate escape (\\ud800-\\udfff without its pair) is not text"
RANGE_MESSAGE = "the number is out of range: at most about 1.8e308 in magnitude"


def too_deep(body: bytes, max_depth: int = MAX_DEPTH) -> bool:
    """True when the JSON in `body` nests arrays and objects deeper than `max_depth`.

    Brackets inside strings do not count; a body whose brackets do not pair (invalid JSON,
    which the parser reports) counts as too deep only with more than `max_depth` unpaired
    opening brackets, which the parser would recurse into before finding the error."""
    if body.count(b"[") + body.count(b"{") <= max_depth:
        return False
    structure = _STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    for _ in range(max_depth):  # each pass removes the innermost level
        shorter = _INNERMOST.sub(b"", structure)
        if not shorter:
            return False
        if len(shorter) == len(structure):
            return shorter.count(b"[") + shorter.count(b"{") > max_depth
        structure = shorter
    return True


def _constant(name: str) -> float:
    return float(name.replace("Infinity", "inf"))


def bad_values(node: Any, path: tuple[int | str, ...] = ()) -> Iterator[tuple[str, str]]:
    """(path, message) for every lone surrogate (in keys too) and non-finite number."""
    if isinstance(node, str):
        if not node.isascii() and not _encodable(node):
            yield error_path(path), SURROGATE_MESSAGE
    elif isinstance(node, float):
        if not math.isfinite(node):
            yield error_path(path), RANGE_MESSAGE
    elif isinstance(node, dict):
        for key, value in node.items():
            if not key.isascii() and not _encodable(key):
                yield error_path((*path, key)), SURROGATE_MESSAGE
            yield from bad_values(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from bad_values(value, (*path, index))


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def depth_problem(max_depth: int) -> Problem:
    message = f"arrays and objects may nest at most {max_depth} levels deep"
    return Problem(
        422,
        "Invalid JSON",
        message,
        kind="validation",
        errors=[{"path": "", "message": message}],
    )


def body_problem(body: bytes, max_depth: int = MAX_DEPTH) -> Problem | None:
    """A 422 for a JSON body nested too deep or holding values no service can keep; None for
    any other body (invalid JSON included: the route's parser words that error)."""
    if too_deep(body, max_depth):
        return depth_problem(max_depth)
    if _SUSPECT.search(body) is None:
        return None
    return values_problem(body)


def intake_problem(body: bytes, max_depth: int = MAX_DEPTH) -> Problem | None:
    """`body_problem` for the events intake, at the cost of a few substring searches: numbers
    out of range are left to its encoder (which refuses them, then names them with
    `bad_values`) and NaN/Infinity to its parser."""
    if too_deep(body, max_depth):
        return depth_problem(max_depth)
    if b"\\ud" not in body and b"\\uD" not in body:  # no surrogate escape at all
        return None
    if _SURROGATE.search(body) is None:
        return None
    return values_problem(body)


def values_problem(body: bytes) -> Problem | None:
    """A 422 naming every lone surrogate and non-finite number of a JSON body (None: none)."""
    try:
        document = json.loads(body, parse_constant=_constant)
    except (ValueError, RecursionError):
        return None
    errors = [{"path": path, "message": message} for path, message in bad_values(document)]
    if not errors:
        return None
    count = len(errors)
    detail = f"{count} field{'s are' if count != 1 else ' is'} invalid"
    return Problem(422, "Invalid JSON", detail, kind="validation", errors=errors)


def named_values_problem(documents: list[Any], *, batch: bool) -> Problem:
    """The 422 of `values_problem` for parsed documents (a request's events, `[i]` first in a
    batch); a generic one if none of them holds such a value."""
    errors = [
        {"path": f"[{index}].{path}" if batch else path, "message": message}
        for index, document in enumerate(documents)
        for path, message in bad_values(document)
    ]
    count = len(errors)
    detail = f"{count} field{'s are' if count != 1 else ' is'} invalid"
    return Problem(422, "Invalid event", detail, kind="validation", errors=errors or None)


def _is_json(scope: Scope) -> bool:
    """A request body the app would parse as JSON: a JSON media type, or none at all."""
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            media: bytes = value.partition(b";")[0].strip().lower()
            return media == b"application/json" or media.endswith(b"+json")
    return True


_NO_BODY = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})


class JsonGuard:
    """ASGI middleware: `body_problem` for every JSON request body, before any route sees it.

    The body is read whole (as the routes would) and handed on unchanged, so signatures over
    the raw bytes still verify."""

    def __init__(self, app: ASGIApp, max_depth: int = MAX_DEPTH) -> None:
        self.app = app
        self.max_depth = max_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in _NO_BODY or not _is_json(scope):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                log.info("client disconnected before its body was read")
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        problem = body_problem(body, self.max_depth)
        if problem is not None:
            await problem_response(problem)(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)
