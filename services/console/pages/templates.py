"""Templates: the list, a template's page with its texts per locale, and the preview
(`POST /v1/templates/preview`): live while typing through htmx, or by the "Preview" button."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from services.console import ruleforms
from services.console.errors import NotFound, ServiceError
from services.console.pages.audit import who
from services.console.roles import EVERYONE, MANAGERS, Table
from services.console.sessions import Member
from services.console.web import GUARDS, Console, Signed, State

router = APIRouter(dependencies=GUARDS)

ACCESS: Table = {
    ("GET", "/templates"): EVERYONE,
    ("GET", "/templates/new"): MANAGERS,
    ("POST", "/templates/new"): MANAGERS,
    ("POST", "/templates/preview"): EVERYONE,
    ("GET", "/templates/{template_id}"): EVERYONE,
    ("POST", "/templates/{template_id}"): MANAGERS,
}

TEXTS = ("sms", "email_subject", "email_text", "email_html")
LOCALE_TAG = re.compile(r"^[a-z]{2,3}(-[A-Z]{2})?$")
NEW_LOCALES = ("es", "en")
LOCALE_LIMIT = 20


async def form_fields(request: Request) -> dict[str, str]:
    """The posted form's text fields (the names depend on the template's locales)."""
    form = await request.form()
    # Browsers send a textarea's line ends as CRLF; an SMS counts each of those characters.
    return {
        name: value.replace("\r\n", "\n") for name, value in form.items() if isinstance(value, str)
    }


Fields = Annotated[dict[str, str], Depends(form_fields)]


def locales_of(fields: dict[str, str]) -> list[str]:
    """The locales the form holds, in its order (`es.sms`, `en.sms`, … → es, en)."""
    found: list[str] = []
    for name in fields:
        tag, _, text = name.partition(".")
        if text in TEXTS and tag not in found and len(found) < LOCALE_LIMIT:
            found.append(tag)
    return found


def template_document(
    template_id: str, fields: dict[str, str], base: dict[str, Any]
) -> dict[str, Any]:
    """`base` with the form's texts in place; an empty text is left out."""
    locales: dict[str, dict[str, str]] = {}
    for tag in locales_of(fields):
        texts = {t: fields[f"{tag}.{t}"] for t in TEXTS if fields.get(f"{tag}.{t}", "").strip()}
        locales[tag] = {**(base.get("locales", {}).get(tag, {})), **texts}
        for text in TEXTS:
            if not fields.get(f"{tag}.{text}", "").strip():
                locales[tag].pop(text, None)
        if not locales[tag]:
            del locales[tag]  # a language added but not written yet
    return {**base, "id": template_id, "locales": locales}


def form_of(document: dict[str, Any]) -> dict[str, str]:
    fields = {"id": str(document.get("id", ""))}
    for tag, texts in document.get("locales", {}).items():
        for text in TEXTS:
            fields[f"{tag}.{text}"] = texts.get(text) or ""
    return fields


def field_id(name: str) -> str:
    return "template-" + name.replace(".", "-").replace("_", "-")


def template_field(path: str) -> str:
    """The form field an API error path belongs to (`locales.es.sms` → es.sms)."""
    if path.startswith("template."):
        path = path[len("template.") :]
    parts = path.split(".")
    if len(parts) >= 3 and parts[0] == "locales" and parts[2] in TEXTS:
        return f"{parts[1]}.{parts[2]}"
    return "id"


def marked(body: str, forced: list[str]) -> list[tuple[str, bool]]:
    """The SMS body in runs, each flagged when its characters force UCS-2."""
    runs: list[tuple[str, bool]] = []
    special = set(forced)
    for character in body:
        flag = character in special
        if runs and runs[-1][1] == flag:
            runs[-1] = (runs[-1][0] + character, flag)
        else:
            runs.append((character, flag))
    return runs


def preview_view(preview: dict[str, Any]) -> dict[str, Any]:
    """The API's preview, with each SMS body split into runs to mark."""
    locales = {}
    for tag, content in preview.get("locales", {}).items():
        sms = content.get("sms")
        if sms:
            sms = {**sms, "runs": marked(sms["body"], sms.get("ucs2_characters", []))}
        locales[tag] = {"sms": sms, "email": content.get("email")}
    return {
        "locales": locales,
        "errors": preview.get("errors", []),
        "undefined": preview.get("undefined", []),
    }


def _preview(state: Console, member: Member, document: dict[str, Any]) -> dict[str, Any]:
    try:
        return preview_view(state.services.rules.preview(document, actor=member.email))
    except ServiceError as error:
        if error.status != 422:
            raise
        items = error.problem.get("errors") or [
            {"path": "", "message": error.problem.get("detail")}
        ]
        return {"locales": {}, "errors": items, "undefined": []}


@router.get("/templates")
def templates(request: Request, state: State, member: Signed) -> Response:
    records = state.services.rules.templates(actor=member.email)
    rows = [
        {
            "id": r["id"],
            "locales": sorted(r["document"].get("locales", {})),
            "updated_at": r.get("updated_at"),
            "updated_by": who(r.get("updated_by", "")),
        }
        for r in sorted(records, key=lambda r: r["id"])
    ]
    return state.pages.render(
        request, "templates_list.html", templates=rows, may_create=not member.read_only
    )


def _page(
    request: Request,
    state: Console,
    member: Member,
    *,
    template_id: str | None,
    fields: dict[str, str],
    record: dict[str, Any] | None = None,
    preview: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    locales = locales_of(fields)
    return state.pages.render(
        request,
        "templates/template.html",
        status=status,
        template_id=template_id,
        record=record,
        updated_by=who(record.get("updated_by", "")) if record else "",
        fields=fields,
        locales=locales,
        texts=TEXTS,
        field_id=field_id,
        may_edit=not member.read_only,
        preview=preview,
        errors=errors or {},
        field_ids={name: field_id(name) for name in ["id", "new_locale", *fields]},
        notice=_notice(request, state),
    )


def _notice(request: Request, state: Console) -> str | None:
    if saved := request.query_params.get("saved"):
        text = state.pages.gettext(request, "Saved as version {version}")
        return text.format(version=saved[:10])
    return None


@router.get("/templates/new")
def new_template(request: Request, state: State, member: Signed) -> Response:
    fields = form_of({"id": "", "locales": {tag: {} for tag in NEW_LOCALES}})
    return _page(request, state, member, template_id=None, fields=fields)


@router.post("/templates/preview")
def live_preview(request: Request, state: State, member: Signed, fields: Fields) -> Response:
    """The preview alone (an htmx fragment), for the texts as typed."""
    document = template_document(fields.get("id") or "draft", fields, {})
    return state.pages.render(
        request, "templates/preview.html", preview=_preview(state, member, document)
    )


@router.get("/templates/{template_id}")
def template(request: Request, template_id: str, state: State, member: Signed) -> Response:
    record = state.services.rules.document("templates", template_id, actor=member.email)
    document = record["document"]
    return _page(
        request,
        state,
        member,
        template_id=template_id,
        fields=form_of(document),
        record=record,
        preview=_preview(state, member, document),
    )


def _submit(
    request: Request,
    state: Console,
    member: Member,
    *,
    template_id: str | None,
    fields: dict[str, str],
    record: dict[str, Any] | None,
) -> Response:
    """Save (a new version) or "Preview": the page again with the preview, or its errors."""
    target = template_id or fields.get("id", "").strip()
    fields, errors = _with_new_locale(request, state, fields)
    document = template_document(target, fields, record["document"] if record else {})
    if fields.get("action") != "preview" and not errors:
        errors = _save(request, state, member, target, document, new=template_id is None)
        if not errors:
            version = state.services.rules.document("templates", target, actor=member.email)
            return RedirectResponse(
                f"/templates/{target}?saved={version['version']}", status_code=303
            )
    return _page(
        request,
        state,
        member,
        template_id=template_id,
        fields={"id": fields.get("id", target), **_texts(fields)},
        record=record,
        preview=_preview(state, member, document),
        errors=errors,
        status=422 if errors else 200,
    )


def _texts(fields: dict[str, str]) -> dict[str, str]:
    """The form's text fields as typed, in their order."""
    return {name: value for name, value in fields.items() if name.partition(".")[2] in TEXTS}


def _with_new_locale(
    request: Request, state: Console, fields: dict[str, str]
) -> tuple[dict[str, str], dict[str, str]]:
    """The fields with empty texts for the language being added ("Add a language")."""
    tag = fields.get("new_locale", "").strip()
    if not tag:
        return fields, {}
    if not LOCALE_TAG.match(tag):
        message = state.pages.gettext(request, "Enter a language code like fr, ca or pt-BR")
        return fields, {"new_locale": message}
    added = {f"{tag}.{text}": fields.get(f"{tag}.{text}", "") for text in TEXTS}
    return {**fields, **added}, {}


def _save(
    request: Request,
    state: Console,
    member: Member,
    target: str,
    document: dict[str, Any],
    *,
    new: bool,
) -> dict[str, str]:
    _ = state.pages.gettext
    if not target:
        return {"id": _(request, "Enter the template's id, like licencia-renovacion")}
    if new and _exists(state, member, target):
        return {"id": _(request, "A template with this id already exists")}
    try:
        state.services.rules.save("templates", target, document, actor=member.email)
    except ServiceError as error:
        if error.status not in (409, 422):
            raise
        words = {"line_word": _(request, "line"), "column_word": _(request, "column")}
        return ruleforms.placed(error.problem, template_field, **words)
    return {}


def _exists(state: Console, member: Member, template_id: str) -> bool:
    try:
        state.services.rules.document("templates", template_id, actor=member.email)
    except NotFound:
        return False
    return True


@router.post("/templates/new")
def create_template(request: Request, state: State, member: Signed, fields: Fields) -> Response:
    return _submit(request, state, member, template_id=None, fields=fields, record=None)


@router.post("/templates/{template_id}")
def update_template(
    request: Request, template_id: str, state: State, member: Signed, fields: Fields
) -> Response:
    record = state.services.rules.document("templates", template_id, actor=member.email)
    return _submit(request, state, member, template_id=template_id, fields=fields, record=record)
