"""Save-time checks of a rule's CEL condition, each problem placed by line and column.

A condition may only read the event (`data`, `subject`, `type`, `source`, `id`, `time`), the
variables `flows.activation` provides; and it may not use the comprehension macros (`map`,
`filter`, `all`, `exists`, `exists_one`), which iterate over lists of the agency's choosing and
could stall the consumer (nested ones are quadratic). `has()` and plain functions stay allowed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from services.rules.errors import ConditionError
from services.rules.flows import compile_condition

EVENT_FIELDS = frozenset({"data", "subject", "type", "source", "id", "time"})
COMPREHENSIONS = frozenset({"map", "filter", "all", "exists", "exists_one"})

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PARSER_PLACE = re.compile(r"<input>:(\d+):(\d+): ")
_PLACED = re.compile(r"^line (\d+), column (\d+)")


@dataclass(frozen=True, slots=True)
class Token:
    """An identifier outside string literals: whether it follows a `.` or precedes a `(`."""

    name: str
    offset: int
    selected: bool
    called: bool


def _skip_string(source: str, start: int) -> int:
    """The offset just after the string literal opening at `start` (prefixes already passed)."""
    triple = source[start : start + 3]
    quote = triple if triple in ('"""', "'''") else source[start]
    raw = start > 0 and source[start - 1] in "rR"
    index = start + len(quote)
    while index < len(source):
        if not raw and source[index] == "\\":
            index += 2
            continue
        if source.startswith(quote, index):
            return index + len(quote)
        index += 1
    return index


def _previous_char(source: str, offset: int) -> str:
    before = source[:offset].rstrip()
    return before[-1] if before else ""


def _next_char(source: str, offset: int) -> str:
    after = source[offset:].lstrip()
    return after[0] if after else ""


def tokens(source: str) -> Iterator[Token]:
    """Identifiers of a CEL expression in order, string literals skipped."""
    index = 0
    while index < len(source):
        char = source[index]
        if char in "\"'":
            index = _skip_string(source, index)
            continue
        found = _IDENTIFIER.match(source, index) if (char.isalpha() or char == "_") else None
        if found is None:
            index += 1
            continue
        end = found.end()
        if end < len(source) and source[end] in "\"'" and found.group() in ("r", "R", "b", "B"):
            index = end  # a string prefix such as r"..." or b'...'
            continue
        yield Token(
            name=found.group(),
            offset=index,
            selected=_previous_char(source, index) == ".",
            called=_next_char(source, end) == "(",
        )
        index = end


def place(source: str, offset: int) -> str:
    """`line L, column C` (both from 1) of an offset in `source`."""
    line = source.count("\n", 0, offset) + 1
    column = offset - (source.rfind("\n", 0, offset) + 1) + 1
    return f"line {line}, column {column}"


def _syntax_message(source: str, error: ConditionError) -> str:
    """The parser's message, led by `line L, column C` when the parser gave a place."""
    text = str(error)
    found = _PARSER_PLACE.search(text)
    if found is None:
        return text
    return f"line {found.group(1)}, column {found.group(2)}: {text}"


def condition_problems(source: str) -> list[str]:
    """What is wrong with a condition, each message placed by line and column; [] if fine."""
    try:
        program = compile_condition(source)
    except ConditionError as error:
        return [_syntax_message(source, error)]
    problems = [
        f"{place(source, token.offset)}: the comprehension macro '{token.name}' is not allowed "
        "in a condition (it could iterate without bound)"
        for token in tokens(source)
        if token.selected and token.called and token.name in COMPREHENSIONS
    ]
    if problems:
        return problems  # their iteration variables would otherwise be reported as unknown
    unknown = set(program.variables()) - EVENT_FIELDS
    first: dict[str, int] = {}
    for token in tokens(source):
        if token.name in unknown and not token.selected and not token.called:
            first.setdefault(token.name, token.offset)
    return [
        f"{place(source, offset)}: '{name}' is not a field of the event; a condition may use "
        f"only {', '.join(sorted(EVENT_FIELDS))}"
        for name, offset in sorted(first.items(), key=lambda item: item[1])
    ] + [f"'{name}' is not a field of the event" for name in sorted(unknown - set(first))]


def where(problem: str) -> tuple[int | None, int | None]:
    """The (line, column) a message of `condition_problems` starts with, else (None, None)."""
    found = _PLACED.match(problem)
    return (int(found.group(1)), int(found.group(2))) if found else (None, None)
