"""A render budget for templates: at most so many steps and so much time per text.

The sandbox stops a template from reaching outside, not from running long: two nested loops
over `range(100000)` or a macro that calls itself twice per level keep a worker busy for
minutes. So every loop iteration and every call in a template spends a step, and a render
that runs out of steps or of time stops with `BudgetExceeded` (a TemplateError: the
template fails, for that event or at save time, never the whole consumer).

Loops are counted by rewriting each `{% for %}` at parse time so its iterable goes through
a counting function; calls are counted by the sandbox's `call` hook, through which every
call in a sandboxed template goes. What builds a huge value in one step is capped too, since
`"x" * 10**9` needs no loop at all: repetition (`*`), powers (`**`), field widths in `%`,
`format` and `str.format`, and sizes given to filters (`center(10**9)`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import update_wrapper
from typing import Any

from jinja2 import nodes
from jinja2.exceptions import TemplateRuntimeError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

STEP = "_avisa_step"
MAX_REPEAT = 100_000  # the longest string or list `*` may build
MAX_EXPONENT = 64


class BudgetExceeded(TemplateRuntimeError):
    """A template that would run for too many steps or too long."""


@dataclass(frozen=True, slots=True)
class Limits:
    """What one template text may cost: source size at save, steps and seconds per render."""

    max_text_bytes: int = 65_536
    max_steps: int = 100_000
    max_seconds: float = 1.0


class _Meter:
    __slots__ = ("deadline", "left", "limits")

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.left = limits.max_steps
        self.deadline = time.monotonic() + limits.max_seconds

    def spend(self) -> None:
        self.left -= 1
        if self.left < 0:
            raise BudgetExceeded(
                f"the template takes more than {self.limits.max_steps} steps (loop iterations"
                " and calls); simplify it"
            )
        if time.monotonic() > self.deadline:
            raise BudgetExceeded(
                f"the template takes longer than {self.limits.max_seconds} s to render"
            )


_meter: ContextVar[_Meter | None] = ContextVar("avisa_template_meter", default=None)


@contextmanager
def metered(limits: Limits) -> Iterator[None]:
    """Renders inside spend from one budget of `limits`."""
    token = _meter.set(_Meter(limits))
    try:
        yield
    finally:
        _meter.reset(token)


def _spend() -> None:
    meter = _meter.get()
    if meter is not None:
        meter.spend()


def _counted(iterable: Iterable[Any]) -> Iterator[Any]:
    for item in iterable:
        _spend()
        yield item


_PRINTF_WIDTH = re.compile(r"%[-+ #0]*(\d*)(?:\.(\d+))?")
_BRACE_WIDTH = re.compile(r"\{[^{}]*:[^{}]*?(\d+)(?:\.(\d+))?[^{}]*\}")


def _too_wide(pattern: re.Pattern[str], spec: str) -> bool:
    """Whether a format string asks for a field wider or more precise than MAX_REPEAT."""
    return any(
        int(number) > MAX_REPEAT
        for match in pattern.finditer(spec)
        for number in match.groups()
        if number
    )


def _guarded(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """A filter that refuses sizes (`center(10**9)`, `indent(10**9)`) above MAX_REPEAT."""

    # Filters marked pass_context (or environment) get that first, then the filtered value.
    first = 1 if getattr(function, "jinja_pass_arg", None) is not None else 0

    def guarded(*args: Any, **kwargs: Any) -> Any:
        _spend()
        value, options = args[first : first + 1], (*args[first + 1 :], *kwargs.values())
        for option in options:
            if isinstance(option, int) and not isinstance(option, bool) and option > MAX_REPEAT:
                raise BudgetExceeded(f"the filter {name} was given {option}, above {MAX_REPEAT}")
        spec = value[0] if name == "format" and value else None
        if isinstance(spec, str) and _too_wide(_PRINTF_WIDTH, spec):
            raise BudgetExceeded(f"the template formats a field wider than {MAX_REPEAT}")
        return function(*args, **kwargs)

    return update_wrapper(guarded, function)  # keeps Jinja's pass_context marks


def _repeat_too_long(left: Any, right: Any) -> bool:
    for sequence, times in ((left, right), (right, left)):
        if isinstance(sequence, str | list | tuple) and isinstance(times, int):
            return len(sequence) * times > MAX_REPEAT
    return False


class BudgetedEnvironment(ImmutableSandboxedEnvironment):
    """The immutable sandbox, with every loop iteration and call spending the budget."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.globals[STEP] = _counted

    def guard_filters(self) -> None:
        """Make every filter registered so far spend a step and refuse runaway sizes; call
        once all filters are registered."""
        self.filters = {name: _guarded(name, f) for name, f in self.filters.items()}

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        for loop in tree.find_all(nodes.For):
            counter = nodes.Name(STEP, "load", lineno=loop.lineno)
            loop.iter = nodes.Call(counter, [loop.iter], [], None, None, lineno=loop.lineno)
        return tree

    def call(
        __self,  # the sandbox names its arguments so, to leave every keyword to the callee
        __context: Context,
        __obj: Any,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        _spend()
        target = getattr(__obj, "__wrapped__", __obj)  # the sandbox wraps str.format
        owner = getattr(target, "__self__", None)
        formats = getattr(target, "__name__", "") in {"format", "format_map"}
        if isinstance(owner, str) and formats and _too_wide(_BRACE_WIDTH, owner):
            raise BudgetExceeded(f"the template formats a field wider than {MAX_REPEAT}")
        return super().call(__context, __obj, *args, **kwargs)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*" and _repeat_too_long(left, right):
            raise BudgetExceeded(f"the template repeats something into more than {MAX_REPEAT}")
        if operator == "%" and isinstance(left, str) and _too_wide(_PRINTF_WIDTH, left):
            raise BudgetExceeded(f"the template formats a field wider than {MAX_REPEAT}")
        if operator == "**" and isinstance(right, int | float) and abs(right) > MAX_EXPONENT:
            raise BudgetExceeded(f"the template raises to a power above {MAX_EXPONENT}")
        return super().call_binop(context, operator, left, right)
