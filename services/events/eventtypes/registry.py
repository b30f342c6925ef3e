"""Event-type schemas: agencies' JSON Schemas for `data`, checked when registered and at the door.

Schemas may only use local references (`#/...`): nothing is ever fetched from the network.
"""

from __future__ import annotations

import ast
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import referencing
import referencing.exceptions
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, ValidationError
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for
from sqlalchemy.orm import Session, sessionmaker

from common.problems import Problem, validation_problem
from common.ttlcache import TtlCache
from schemas.events import CloudEvent
from services.events.callbacks.decisions import agency_of
from services.events.eventtypes import store as eventtype_store
from services.events.eventtypes.patterns import PatternError, linear, pattern_errors, uses_both
from services.events.flows import nul_paths
from services.events.intake.binding import NUL_MESSAGE

_NO_REMOTE: referencing.Registry[Any] = referencing.Registry()


def _refs(document: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(document, Mapping):
        for key, value in document.items():
            if key == "$ref":
                yield path or "$ref", value
            else:
                yield from _refs(value, f"{path}.{key}" if path else str(key))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            yield from _refs(value, f"{path}[{index}]")


def schema_errors(schema: Mapping[str, Any]) -> list[dict[str, str]]:
    """Why a document is not a usable JSON Schema (empty when it is), each with its path."""
    nul = [".".join(map(str, path)) for path in nul_paths(schema)]
    if nul:
        return [{"path": path, "message": NUL_MESSAGE} for path in nul]
    cls = validator_for(schema, default=Draft202012Validator)
    try:
        cls.check_schema(schema)
    except SchemaError as error:
        where = ".".join(str(p) for p in error.absolute_path)
        return [{"path": where, "message": error.message}]
    refs = [
        {"path": where, "message": f"only local references like '#/$defs/x' are allowed: {ref!r}"}
        for where, ref in _refs(schema)
        if not (isinstance(ref, str) and ref.startswith("#"))
    ]
    if uses_both(schema):
        refs.append({"path": "", "message": UNEVALUATED_MESSAGE})
    return refs + list(pattern_errors(schema))


UNEVALUATED_MESSAGE = "unevaluatedProperties may not be used with patternProperties"


def compile_schema(schema: Mapping[str, Any]) -> Validator:
    """A validator of the schema whose regular expressions run on RE2 (linear time)."""
    cls = linear(validator_for(schema, default=Draft202012Validator))
    validator: Validator = cls(schema, registry=_NO_REMOTE, format_checker=cls.FORMAT_CHECKER)
    return validator


def data_errors(validator: Validator, data: Any, prefix: tuple[int | str, ...]) -> list[Any]:
    """Pydantic-style errors (`loc`, `msg`) for `data`, located under `prefix + ('data',)`."""
    try:
        found = sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))
    except (referencing.exceptions.Unresolvable, PatternError) as error:
        # A reference that resolves nowhere, or a pattern stored before RE2 checked them.
        return [{"loc": (*prefix, "data"), "msg": f"the type's schema cannot be used: {error}"}]
    return [_located(error, (*prefix, "data")) for error in found]


_REQUIRED = " is a required property"


def _located(error: ValidationError, prefix: tuple[int | str, ...]) -> dict[str, Any]:
    """A missing property is named by its own path (`data.expires_on`), not its parent's."""
    location = (*prefix, *error.absolute_path)
    if error.validator == "required" and error.message.endswith(_REQUIRED):
        try:
            name = ast.literal_eval(error.message.removesuffix(_REQUIRED))
        except (ValueError, SyntaxError):
            name = None
        if isinstance(name, str):
            return {"loc": (*location, name), "msg": "is required by the event type's schema"}
    return {"loc": location, "msg": error.message}


class EventTypes:
    """The registered schemas by (agency, type), compiled and cached for `ttl_s` seconds."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        ttl_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessions = sessions
        self._cache: TtlCache[str, dict[str, Validator]] = TtlCache(
            self._load, ttl_s=ttl_s, clock=clock
        )

    def _load(self, agency_id: str) -> dict[str, Validator]:
        with self._sessions() as session:
            rows = eventtype_store.schemas_of(session=session, agency_id=agency_id)
        return {type_: compile_schema(schema) for type_, schema in rows.items()}

    def _of(self, agency_id: str) -> dict[str, Validator]:
        return self._cache.get(agency_id)

    def invalidate(self, agency_id: str) -> None:
        self._cache.invalidate(agency_id)

    def cached(self, events: Sequence[CloudEvent]) -> bool:
        """True when checking `events` needs no database read (every agency's schemas fresh)."""
        agencies = {agency_of(event.source) for event in events}
        return all(self._cache.peek(agency_id) is not None for agency_id in agencies)

    def errors(self, events: Sequence[CloudEvent], *, batch: bool) -> list[Any]:
        """Every registered-schema error of the events (indexed when the request is a batch)."""
        found: list[Any] = []
        for index, event in enumerate(events):
            validator = self._of(agency_of(event.source)).get(event.type)
            if validator is None:
                continue
            data = event.data.model_dump(mode="json", exclude_unset=True)
            found += data_errors(validator, data, (index,) if batch else ())
        return found

    def needs_check(self, events: Sequence[CloudEvent]) -> bool:
        """False only when every agency's schemas are cached and none is for these events'
        types (the common case, answered without a thread hop); True: call `check`."""
        for event in events:
            schemas = self._cache.peek(agency_of(event.source))
            if schemas is None or event.type in schemas:
                return True
        return False

    def check(self, events: Sequence[CloudEvent], *, batch: bool) -> None:
        """422 naming `data.<path>` for each event that breaks its type's schema."""
        errors = self.errors(events, batch=batch)
        if errors:
            raise validation_problem(errors, "Invalid batch" if batch else "Invalid event")


def not_a_schema(errors: list[dict[str, str]]) -> Problem:
    return Problem(
        422,
        "Invalid JSON Schema",
        f"the body is not a usable JSON Schema ({len(errors)} problem(s))",
        kind="validation",
        errors=errors,
    )
