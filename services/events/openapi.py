"""The OpenAPI description of `POST /v1/events`, whose body FastAPI cannot infer (it is raw)."""

from __future__ import annotations

from typing import Any

from schemas.events import CloudEvent


def _inline(node: Any, definitions: dict[str, Any]) -> Any:
    """The schema with every `#/$defs/...` reference replaced by its definition."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inline(definitions[ref.rsplit("/", 1)[1]], definitions)
        return {key: _inline(value, definitions) for key, value in node.items() if key != "$defs"}
    if isinstance(node, list):
        return [_inline(item, definitions) for item in node]
    return node


def event_schema() -> dict[str, Any]:
    """The CloudEvent JSON Schema, self-contained (OpenAPI resolves `$ref` from its own root)."""
    schema = CloudEvent.model_json_schema()
    inlined: dict[str, Any] = _inline(schema, schema.get("$defs", {}))
    return inlined


def publish_request() -> dict[str, Any]:
    event = event_schema()
    batch = {"type": "array", "items": event, "minItems": 1, "maxItems": 1000}
    return {
        "requestBody": {
            "required": True,
            "description": (
                "One CloudEvent (structured mode), a JSON array of them (batch mode), or, in "
                "binary mode, the event's `data` as a JSON body with `ce-specversion`, `ce-id`, "
                "`ce-source`, `ce-type`, `ce-subject` (and optionally `ce-time`) headers."
            ),
            "content": {
                "application/cloudevents+json": {"schema": event},
                "application/json": {"schema": event},
                "application/cloudevents-batch+json": {"schema": batch},
            },
        }
    }


PUBLISH_REQUEST = publish_request()
