"""The rules service's exceptions, and how they become problem+json."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from common.problems import Problem


@dataclass(frozen=True, slots=True)
class FieldError:
    """One thing wrong with a document: where (dotted path) and what; `line` and `column`
    (from 1) place it inside the field's text when known (a CEL condition)."""

    path: str
    message: str
    line: int | None = None
    column: int | None = None

    def as_item(self) -> dict[str, Any]:
        """The problem+json `errors` entry: path and message, with line and column if known."""
        item: dict[str, Any] = {"path": self.path, "message": self.message}
        if self.line is not None:
            item["line"], item["column"] = self.line, self.column
        return item


class DocumentInvalid(Exception):
    """A rule or template that cannot be saved; each error names its field."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(f"{e.path}: {e.message}" for e in errors))
        self.errors = errors


class ConditionError(Exception):
    """A CEL condition that does not compile, or failed or was not a boolean for an event."""


class RenderError(Exception):
    """A template that cannot be rendered for an event; `path` names the text that failed."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


def invalid_document(kind: str, error: DocumentInvalid) -> Problem:
    """422 naming each bad field of a rule or template."""
    items = [e.as_item() for e in error.errors]
    count = len(items)
    detail = f"{count} field{'s are' if count != 1 else ' is'} invalid"
    return Problem(422, f"Invalid {kind}", detail, kind="validation", errors=items)


def not_found(kind: str, object_id: str) -> Problem:
    return Problem(404, "Not found", f"there is no {kind} '{object_id}'", kind="not-found")


def conflict(detail: str) -> Problem:
    return Problem(409, "Conflict", detail, kind="conflict")
