"""Rendering templates: Jinja2 in an immutable sandbox, strict about undefined names.

Variables: `citizen`, `data`, `subject`, `type`, `time`, `source`, `id`, `notification` and
`locale`. Filters `fecha` (a date in the locale's long form) and `numero` (a number with the
locale's separators). Only `email_html` is autoescaped; `email_html` is derived from
`email_text` when a locale has none.

In derived HTML only the links the template writes become links (as GOV.UK Notify does): a
URL in the rendered text is linked when the template's own text has it, or has its beginning
up to at least the end of the host (`https://sede.dgt.es/tramites/{{ data.id }}`). A URL that
comes from the event's data stays plain text, so an agency's or a citizen's text can never
put a link into an email.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_date
from babel.numbers import format_decimal
from jinja2 import StrictUndefined, Template, TemplateError, Undefined, pass_context
from jinja2.runtime import Context
from markupsafe import escape

from schemas.notifications import Channel, Content, EmailContent, SmsContent
from schemas.rules import LocaleTemplate
from schemas.rules import Template as TemplateDocument
from services.rules.budget import BudgetedEnvironment, Limits, metered
from services.rules.errors import RenderError

_URL = re.compile(r"https?://[^\s<>&\"']+[^\s<>&\"'.,;:!?)]")
_CACHE_LIMIT = 2000


def choose_locale(available: Sequence[str], wanted: str | None, default: str) -> str:
    """The template locale to use: the wanted one, its language, the default, else the first.

    Tags compare case-insensitively; "es-ES" falls back to "es", and "es" accepts "es-ES"
    when the template has no plain "es".
    """
    by_key = {tag.lower().replace("_", "-"): tag for tag in available}
    for candidate in (wanted, default):
        if not candidate:
            continue
        tag = candidate.lower().replace("_", "-")
        language = tag.split("-")[0]
        if tag in by_key:
            return by_key[tag]
        if language in by_key:
            return by_key[language]
        for key, original in by_key.items():
            if key.split("-")[0] == language:
                return original
    return available[0]


def _written(url: str, links: Collection[str]) -> bool:
    """Whether `url` is one of the template's own `links`, or extends one past its host."""
    for link in links:
        if url == link:
            return True
        host_ended = "/" in link.partition("://")[2]
        if host_ended and url.startswith(link):
            return True
    return False


def html_from_text(text: str, *, links: Collection[str] = ()) -> str:
    """Plain text as simple HTML: escaped, paragraphs at blank lines, `<br>` at line ends,
    and the URLs the template wrote (`links`, see the module docstring) as links."""

    def link(match: re.Match[str]) -> str:
        url = match.group(0)
        return f'<a href="{url}">{url}</a>' if _written(url, links) else url

    paragraphs = [p for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]
    parts = []
    for paragraph in paragraphs:
        escaped = str(escape(paragraph.strip()))
        linked = _URL.sub(link, escaped)
        parts.append("<p>" + linked.replace("\n", "<br>\n") + "</p>")
    return "\n".join(parts)


class SampleValue:
    """Stands in for any event field a sample event lacks, so only real mistakes fail.

    Checking a template at save time must not depend on which `data` fields a future event
    will carry, yet must still catch syntax errors, sandbox violations and misspelled
    `citizen`/`notification` variables.
    """

    def __getattr__(self, name: str) -> SampleValue:
        if name.startswith("_"):
            raise AttributeError(name)
        return SampleValue()

    def __getitem__(self, _key: object) -> SampleValue:
        return SampleValue()

    def __str__(self) -> str:
        return "…"

    def __iter__(self) -> Any:
        return iter(())

    def __len__(self) -> int:
        return 0

    def __int__(self) -> int:
        return 0

    def __float__(self) -> float:
        return 0.0

    def __lt__(self, _other: object) -> bool:
        return False

    __le__ = __gt__ = __ge__ = __lt__

    def __add__(self, _other: object) -> SampleValue:
        return self

    __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __truediv__ = __rtruediv__ = __add__
    __mod__ = __rmod__ = __floordiv__ = __rfloordiv__ = __add__


class SampleData(dict[str, Any]):
    """An event `data` mapping that answers every missing key with a `SampleValue`."""

    def __missing__(self, _key: str) -> SampleValue:
        return SampleValue()


def _defined(value: Any) -> Any:
    if isinstance(value, Undefined):
        str(value)  # a StrictUndefined raises UndefinedError naming the missing variable
    return value


def _as_date(value: Any, zone: ZoneInfo) -> date:
    value = _defined(value)
    if isinstance(value, SampleValue):
        return date(2027, 1, 15)
    if isinstance(value, datetime):
        return value.astimezone(zone).date() if value.tzinfo else value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            return _as_date(datetime.fromisoformat(text.replace("Z", "+00:00")), zone)
        except ValueError:
            pass
    raise ValueError(f"fecha needs a date like 2027-01-15, not {value!r}")


def _as_number(value: Any) -> float | int:
    value = _defined(value)
    if isinstance(value, SampleValue):
        return 0
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"numero needs a number, not {value!r}")
    if isinstance(value, str):
        try:
            return float(value) if any(c in value for c in ".eE") else int(value)
        except ValueError:
            raise ValueError(f"numero needs a number, not {value!r}") from None
    return value


@dataclass(frozen=True, slots=True)
class Rendered:
    """The texts of one notification, in the locale chosen for it."""

    locale: str
    content: Content


# Where `render` puts the zone the caller chose for `fecha` (not a documented template variable).
ZONE_VARIABLE = "_avisa_zone"


class Renderer:
    """Compiles and renders template texts; compiled texts are cached by source."""

    def __init__(
        self, *, default_locale: str, default_timezone: str, limits: Limits | None = None
    ) -> None:
        self.default_locale = default_locale
        self.limits = limits or Limits()
        self._default_zone = ZoneInfo(default_timezone)
        self._text = self._environment(autoescape=False)
        self._html = self._environment(autoescape=True)
        self._cache: dict[tuple[bool, str], Template] = {}
        self._links: dict[str, tuple[str, ...]] = {}

    def _environment(self, *, autoescape: bool) -> BudgetedEnvironment:
        env = BudgetedEnvironment(
            undefined=StrictUndefined,
            autoescape=autoescape,
            finalize=lambda value: "" if value is None else value,
        )
        env.filters["fecha"] = self._fecha
        env.filters["numero"] = self._numero
        env.guard_filters()
        return env

    def _zone(self, context: Context) -> ZoneInfo:
        citizen = context.get("citizen")
        name = context.get(ZONE_VARIABLE)
        if not name:
            name = citizen.get("timezone") if isinstance(citizen, Mapping) else None
        return ZoneInfo(name) if isinstance(name, str) and name else self._default_zone

    @pass_context
    def _fecha(self, context: Context, value: Any, format: str = "long") -> str:
        locale = str(context.get("locale") or self.default_locale).replace("-", "_")
        return format_date(_as_date(value, self._zone(context)), format=format, locale=locale)

    @pass_context
    def _numero(self, context: Context, value: Any, decimals: int | None = None) -> str:
        locale = str(context.get("locale") or self.default_locale).replace("-", "_")
        number = _as_number(value)
        if decimals is None:
            return format_decimal(number, locale=locale)
        pattern = "#,##0" + ("." + "0" * decimals if decimals > 0 else "")
        return format_decimal(number, format=pattern, locale=locale)

    def compile(self, source: str, *, html: bool = False) -> Template:
        """The compiled text; raises jinja2.TemplateSyntaxError."""
        key = (html, source)
        compiled = self._cache.get(key)
        if compiled is None:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            compiled = (self._html if html else self._text).from_string(source)
            self._cache[key] = compiled
        return compiled

    def written_links(self, source: str) -> tuple[str, ...]:
        """The URLs in a template text's own words (not in its `{{ }}` or `{% %}` parts)."""
        links = self._links.get(source)
        if links is None:
            if len(self._links) >= _CACHE_LIMIT:
                self._links.clear()
            try:
                tokens = self._text.lex(source)
                literal = "\n".join(value for _, kind, value in tokens if kind == "data")
            except TemplateError:
                literal = ""
            links = tuple(m.group(0) for m in _URL.finditer(str(escape(literal))))
            self._links[source] = links
        return links

    def render_text(
        self, source: str, variables: Mapping[str, Any], *, path: str, html: bool = False
    ) -> str:
        """Render one text within the budget of `limits`; any failure becomes a RenderError
        naming `path`."""
        try:
            with metered(self.limits):
                return self.compile(source, html=html).render(variables).strip()
        except TemplateError as error:
            raise RenderError(path, _describe(error)) from error
        except RecursionError as error:
            raise RenderError(path, "the template nests or recurses too deeply") from error
        except (ValueError, TypeError, ArithmeticError, LookupError) as error:
            raise RenderError(path, str(error)) from error

    def render(
        self,
        template: TemplateDocument,
        variables: Mapping[str, Any],
        *,
        channels: Sequence[Channel],
        wanted_locale: str | None,
        zone: str | None = None,
    ) -> Rendered:
        """Render the texts `channels` need, in the locale chosen for the citizen; `fecha`
        shows times in `zone` (default: the event citizen's zone, else the default zone)."""
        locale = choose_locale(list(template.locales), wanted_locale, self.default_locale)
        texts = template.locales[locale]
        scope = {**variables, "locale": locale}
        if zone:
            scope[ZONE_VARIABLE] = zone
        prefix = f"locales.{locale}"
        content = Content(
            sms=self._sms(texts, scope, prefix) if Channel.SMS in channels else None,
            email=self._email(texts, scope, prefix) if Channel.EMAIL in channels else None,
        )
        return Rendered(locale=locale, content=content)

    def _sms(self, texts: LocaleTemplate, scope: Mapping[str, Any], prefix: str) -> SmsContent:
        if not texts.sms:
            raise RenderError(f"{prefix}.sms", "the template has no sms text in this locale")
        return SmsContent(body=self.render_text(texts.sms, scope, path=f"{prefix}.sms"))

    def _email(self, texts: LocaleTemplate, scope: Mapping[str, Any], prefix: str) -> EmailContent:
        for name in ("email_subject", "email_text"):
            if not getattr(texts, name):
                raise RenderError(f"{prefix}.{name}", f"the template has no {name} here")
        subject = self.render_text(texts.email_subject or "", scope, path=f"{prefix}.email_subject")
        text = self.render_text(texts.email_text or "", scope, path=f"{prefix}.email_text")
        if texts.email_html:
            html = self.render_text(texts.email_html, scope, path=f"{prefix}.email_html", html=True)
        else:
            html = html_from_text(text, links=self.written_links(texts.email_text or ""))
        return EmailContent(subject=" ".join(subject.split()), text=text, html=html)


def _describe(error: TemplateError) -> str:
    line = getattr(error, "lineno", None)
    message = error.message or type(error).__name__
    return f"{message} (line {line})" if line else message
