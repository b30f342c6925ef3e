"""The CloudEvents HTTP binding: structured, batch and binary requests → validated events."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any
from urllib.parse import unquote

from pydantic import TypeAdapter, ValidationError

from common.jsonguard import named_values_problem
from common.problems import Problem, validation_problem
from schemas.events import CloudEvent
from services.events import flows

STRUCTURED = ("application/cloudevents+json", "application/json")
BATCH = "application/cloudevents-batch+json"
NUL_MESSAGE = "NUL characters (\\u0000) are not accepted"


class Mode(Enum):
    STRUCTURED = "structured"
    BATCH = "batch"
    BINARY = "binary"


@dataclass(frozen=True, slots=True)
class Envelope:
    """A request body not yet parsed, with what the headers say about it."""

    mode: Mode
    body: bytes
    headers: Mapping[str, str]


def media_type(content_type: str) -> str:
    return content_type.partition(";")[0].strip().lower()


def _is_json(media: str) -> bool:
    return media == "application/json" or media.endswith("+json")


def mode_for(headers: Mapping[str, str]) -> Mode:
    """Pick the binding mode from the headers; 415 for a content type we cannot read."""
    media = media_type(headers.get("content-type", ""))
    if media == BATCH:
        return Mode.BATCH
    if media == STRUCTURED[0]:
        return Mode.STRUCTURED
    if "ce-specversion" in headers:
        # Without a content type the data is taken as JSON: the SDK's legacy `to_binary`
        # sends none when the event has no `datacontenttype`.
        if not media or _is_json(media):
            return Mode.BINARY
    elif media == STRUCTURED[1]:
        return Mode.STRUCTURED
    raise Problem(
        415,
        "Unsupported media type",
        f"send {STRUCTURED[0]}, {STRUCTURED[1]} or {BATCH} (or binary mode with "
        f"ce-* headers and a JSON body), not '{media or 'no content type'}'",
        kind="unsupported-media-type",
    )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(body: bytes) -> Any:
    """Parse the body; 422 naming the position of the first syntax error."""
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except json.JSONDecodeError as error:
        message = f"invalid JSON: {error.msg} at line {error.lineno} column {error.colno}"
    except (UnicodeDecodeError, ValueError) as error:
        message = f"invalid JSON: {error}"
    except RecursionError:
        message = "invalid JSON: nested too deep"
    raise Problem(
        422, "Invalid JSON", message, kind="validation", errors=[{"path": "", "message": message}]
    )


def _binary_document(envelope: Envelope, data: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        name[3:]: unquote(value)
        for name, value in envelope.headers.items()
        if name.lower().startswith("ce-")
    }
    document["datacontenttype"] = envelope.headers.get("content-type")
    document["data"] = data
    return document


def documents(envelope: Envelope, *, max_batch: int) -> list[Any]:
    """The raw event documents of a request, one per event."""
    parsed = parse_json(envelope.body)
    if envelope.mode is Mode.BINARY:
        return [_binary_document(envelope, parsed)]
    if envelope.mode is Mode.STRUCTURED:
        return [parsed]
    if not isinstance(parsed, list):
        raise Problem(
            422,
            "Invalid batch",
            "a batch is a JSON array of events",
            kind="validation",
            errors=[{"path": "", "message": "expected an array"}],
        )
    if len(parsed) > max_batch:
        message = f"{len(parsed)} events; at most {max_batch} per batch"
        raise Problem(
            422,
            "Batch too large",
            message,
            kind="validation",
            errors=[{"path": "", "message": message}],
        )
    return parsed


_BATCH: TypeAdapter[list[CloudEvent]] = TypeAdapter(list[CloudEvent])

# Bodies the fast path leaves to the checked one: JSON constants pydantic's parser would take
# (json.loads is told to refuse them) and escaped NULs, which need their paths named.
_SLOW_TOKENS = (b"NaN", b"Infinity", b"\\u0000")


def _fast(envelope: Envelope, *, max_batch: int) -> list[CloudEvent] | None:
    """The events parsed and validated in one pass (pydantic's JSON parser), or None when the
    body needs the checked path: binary mode, a suspicious token, or any error at all (so
    every error is reported exactly as the checked path words it)."""
    if envelope.mode is Mode.BINARY or any(t in envelope.body for t in _SLOW_TOKENS):
        return None
    try:
        if envelope.mode is Mode.STRUCTURED:
            return [CloudEvent.model_validate_json(envelope.body)]
        events = _BATCH.validate_json(envelope.body)
    except ValidationError:
        return None
    return events if len(events) <= max_batch else None


def validate(envelope: Envelope, *, max_batch: int) -> list[CloudEvent]:
    """Every event of the request, validated; one invalid item rejects them all with 422."""
    events = _fast(envelope, max_batch=max_batch)
    if events is None:
        events = _checked(envelope, max_batch=max_batch)
    if any(_non_finite(event) for event in events):
        documents = [event.model_dump() for event in events]
        raise named_values_problem(documents, batch=envelope.mode is Mode.BATCH)
    return events


def _non_finite(event: CloudEvent) -> bool:
    """Whether a number out of range (`1e999` parses as infinity) is among the values the
    models do not type: the event's, its data's and its citizen's extra members."""
    pending: list[Any] = [event.model_extra, event.data.model_extra, event.data.citizen.model_extra]
    while pending:
        node = pending.pop()
        kind = type(node)
        if kind is float:
            if node - node != 0:  # inf - inf and nan - nan are nan
                return True
        elif kind is dict:
            pending.extend(node.values())
        elif kind is list:
            pending.extend(node)
    return False


def _checked(envelope: Envelope, *, max_batch: int) -> list[CloudEvent]:
    """`validate` the careful way: parse, check the shape, then validate item by item."""
    items = documents(envelope, max_batch=max_batch)
    batch = envelope.mode is Mode.BATCH
    events: list[CloudEvent] = []
    errors: list[Any] = []
    if envelope.mode is Mode.BINARY or b"\\u0000" in envelope.body:
        errors += [
            {"loc": path, "msg": NUL_MESSAGE}
            for path in flows.nul_paths(items if batch else items[0])
        ]
    for index, item in enumerate(items):
        try:
            events.append(CloudEvent.model_validate(item))
        except ValidationError as error:
            prefix: tuple[int | str, ...] = (index,) if batch else ()
            errors += [{**e, "loc": (*prefix, *e["loc"])} for e in error.errors()]
    if errors:
        title = "Invalid batch" if batch else "Invalid event"
        raise validation_problem(errors, title)
    return events
