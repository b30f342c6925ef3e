"""Rules: the list, a rule's page, creating and editing (fields or YAML), enabling and
disabling with a confirmation. Editors see only the rules whose `source` is their agency."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from services.console import ruleforms
from services.console.errors import NotFound, ServiceError
from services.console.pages.audit import who
from services.console.roles import EVERYONE, MANAGERS, Table
from services.console.sessions import Member
from services.console.web import GUARDS, Console, Signed, State

router = APIRouter(dependencies=GUARDS)

ACCESS: Table = {
    ("GET", "/rules"): EVERYONE,
    ("GET", "/rules/new"): MANAGERS,
    ("POST", "/rules/new"): MANAGERS,
    ("GET", "/rules/{rule_id}"): EVERYONE,
    ("GET", "/rules/{rule_id}/edit"): MANAGERS,
    ("POST", "/rules/{rule_id}/edit"): MANAGERS,
    ("GET", "/rules/{rule_id}/enabled"): MANAGERS,
    ("POST", "/rules/{rule_id}/enabled"): MANAGERS,
}

Text = Annotated[str, Form()]
Ticks = Annotated[list[str], Form()]

FIELD_IDS = {name: f"rule-{name.replace('_', '-')}" for name in ruleforms.RULE_FIELDS}
FIELD_IDS["channels"] = "rule-channels"
FIELD_IDS["yaml"] = "rule-yaml"


def may_see(member: Member, document: dict[str, Any]) -> bool:
    """Editors see only the rules whose `source` is their agency."""
    return member.role != "editor" or document.get("source") == member.agency_id


def visible_rules(rules: list[dict[str, Any]], member: Member) -> list[dict[str, Any]]:
    return [r for r in rules if may_see(member, r["document"])]


def visible_rule(state: Console, member: Member, rule_id: str) -> dict[str, Any]:
    """The rule's record, if this member may see it; another agency's is 'not found'."""
    record = state.services.rules.document("rules", rule_id, actor=member.email)
    if not may_see(member, record["document"]):
        raise NotFound(rule_id)
    return record


def _rule_row(record: dict[str, Any]) -> dict[str, Any]:
    document = record["document"]
    return {
        "id": record["id"],
        "description": document.get("description", ""),
        "on": document.get("on", ""),
        "enabled": document.get("enabled", True),
        "channels": document.get("channels", []),
        "pending": record.get("pending_reminders", 0),
        "updated_at": record.get("updated_at"),
        "updated_by": who(record.get("updated_by", "")),
    }


@router.get("/rules")
def rules(request: Request, state: State, member: Signed) -> Response:
    records = visible_rules(state.services.rules.rules(actor=member.email), member)
    rows = sorted((_rule_row(r) for r in records), key=lambda row: row["id"])
    return state.pages.render(
        request, "rules_list.html", rules=rows, may_create=not member.read_only
    )


def _notice(request: Request, state: Console) -> str | None:
    _ = state.pages.gettext
    if saved := request.query_params.get("saved"):
        return _(request, "Saved as version {version}").format(version=saved[:10])
    return None


def _editor(
    request: Request,
    state: Console,
    *,
    rule_id: str | None,
    form: dict[str, Any],
    yaml_text: str,
    yaml_original: str,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    return state.pages.render(
        request,
        "rules/edit.html",
        status=status,
        rule_id=rule_id,
        form=form,
        yaml_text=yaml_text,
        yaml_original=yaml_original,
        errors=errors or {},
        field_ids=FIELD_IDS,
    )


NEW_RULE: dict[str, Any] = {
    "id": "",
    "description": "",
    "enabled": True,
    "on": "",
    "channels": ["sms", "email"],
    "template": "",
}


def _blank(member: Member) -> dict[str, Any]:
    document = dict(NEW_RULE)
    if member.role == "editor" and member.agency_id:
        document["source"] = member.agency_id
    return document


@router.get("/rules/new")
def new_rule(request: Request, state: State, member: Signed) -> Response:
    document = _blank(member)
    text = ruleforms.as_yaml(document)
    return _editor(
        request,
        state,
        rule_id=None,
        form=ruleforms.rule_form(document),
        yaml_text=text,
        yaml_original=text,
    )


@router.get("/rules/{rule_id}")
def rule(request: Request, rule_id: str, state: State, member: Signed) -> Response:
    record = visible_rule(state, member, rule_id)
    sample = ruleforms.sample_event(record["document"], source=member.agency_id)
    return state.pages.render(
        request,
        "rules/rule.html",
        record=record,
        rule=record["document"],
        updated_by=who(record.get("updated_by", "")),
        may_edit=not member.read_only,
        event_text=sample,
        errors={},
        result=None,
        notice=_notice(request, state),
    )


@router.get("/rules/{rule_id}/edit")
def edit_rule(request: Request, rule_id: str, state: State, member: Signed) -> Response:
    document = visible_rule(state, member, rule_id)["document"]
    text = ruleforms.as_yaml(document)
    return _editor(
        request,
        state,
        rule_id=rule_id,
        form=ruleforms.rule_form(document),
        yaml_text=text,
        yaml_original=text,
    )


def _own_problems(
    request: Request, state: Console, member: Member, document: dict[str, Any], rule_id: str | None
) -> dict[str, str]:
    """What the console itself refuses before asking the service."""
    _ = state.pages.gettext
    errors: dict[str, str] = {}
    if not str(document.get("id", "")).strip():
        errors["id"] = _(request, "Enter the rule's id, like licencia-renovacion")
    elif rule_id is not None and document.get("id") != rule_id:
        errors["id"] = _(request, "A rule's id cannot change; create a new rule instead")
    if member.role == "editor" and document.get("source") != member.agency_id:
        errors["source"] = _(request, "Your rules must have the source {agency}").format(
            agency=member.agency_id
        )
    return errors


def _save(
    request: Request,
    state: Console,
    member: Member,
    document: dict[str, Any],
    *,
    rule_id: str | None,
    field_of: Any,
) -> tuple[int | None, dict[str, str]]:
    """Saves the document (a new version) or says what is wrong, each beside its field."""
    own = _own_problems(request, state, member, document, rule_id)
    if own:
        return None, ruleforms.placed(
            {"errors": [{"path": k, "message": v} for k, v in own.items()]},
            field_of,
            line_word="",
            column_word="",
        )
    target = str(document["id"])
    if rule_id is None and _exists(state, member, target):
        taken = state.pages.gettext(request, "A rule with this id already exists")
        return None, {field_of("id"): taken}
    try:
        return state.services.rules.save("rules", target, document, actor=member.email), {}
    except ServiceError as error:
        if error.status not in (409, 422):
            raise
        words = {
            "line_word": state.pages.gettext(request, "line"),
            "column_word": state.pages.gettext(request, "column"),
        }
        return None, ruleforms.placed(error.problem, field_of, **words)


def _in_yaml(path: str) -> str:
    return "yaml"


def _exists(state: Console, member: Member, rule_id: str) -> bool:
    try:
        state.services.rules.document("rules", rule_id, actor=member.email)
    except NotFound:
        return False
    return True


def _submit(
    request: Request,
    state: Console,
    member: Member,
    *,
    rule_id: str | None,
    base: dict[str, Any],
    form: Posted,
) -> Response:
    """The YAML when it was changed, else the fields: saved, or the form again with errors."""
    fields, yaml_text, yaml_original = form.fields, form.yaml, form.yaml_original
    yaml_mode = yaml_text.strip() != yaml_original.strip()
    errors: dict[str, str]
    if yaml_mode:
        try:
            document = ruleforms.parse_yaml(yaml_text)
        except ValueError as error:
            text = state.pages.gettext(request, "This YAML is not one rule: {problem}")
            document, errors = {}, {"yaml": text.format(problem=str(error))}
        else:
            version, errors = _save(
                request, state, member, document, rule_id=rule_id, field_of=_in_yaml
            )
        shown = ruleforms.rule_form(document or base) if errors else fields
    else:
        document = ruleforms.rule_document(fields, base)
        version, errors = _save(
            request, state, member, document, rule_id=rule_id, field_of=ruleforms.rule_field
        )
        yaml_text = yaml_original = ruleforms.as_yaml(document)
        shown = fields
    if errors:
        return _editor(
            request,
            state,
            rule_id=rule_id,
            form=shown,
            yaml_text=yaml_text,
            yaml_original=yaml_original,
            errors=errors,
            status=422,
        )
    return RedirectResponse(f"/rules/{document['id']}?saved={version}", status_code=303)


@dataclass
class Posted:
    """The rule form as posted: its fields, and the YAML with the text it started from."""

    fields: dict[str, Any]
    yaml: str
    yaml_original: str


def posted(
    *,
    id: Text = "",
    description: Text = "",
    on: Text = "",
    source: Text = "",
    when: Text = "",
    channels: Ticks | None = None,
    template: Text = "",
    relative_to: Text = "",
    offsets: Text = "",
    at: Text = "",
    calendar: Text = "",
    cancel_on: Text = "",
    critical: Text = "",
    enabled: Text = "",
    yaml: Text = "",
    yaml_original: Text = "",
) -> Posted:
    fields = {
        "id": id,
        "description": description,
        "on": on,
        "source": source,
        "when": when,
        "channels": channels or [],
        "template": template,
        "relative_to": relative_to,
        "offsets": offsets,
        "at": at,
        "calendar": calendar,
        "cancel_on": cancel_on,
        "critical": critical,
        "enabled": enabled,
    }
    # Browsers send a textarea's line ends as CRLF: keep the documents' plain newlines.
    fields["when"] = when.replace("\r\n", "\n")
    return Posted(
        fields=fields,
        yaml=yaml.replace("\r\n", "\n"),
        yaml_original=yaml_original.replace("\r\n", "\n"),
    )


Form_ = Annotated[Posted, Depends(posted)]


@router.post("/rules/new")
def create_rule(request: Request, state: State, member: Signed, form: Form_) -> Response:
    return _submit(request, state, member, rule_id=None, base={}, form=form)


@router.post("/rules/{rule_id}/edit")
def update_rule(
    request: Request, rule_id: str, state: State, member: Signed, form: Form_
) -> Response:
    base = visible_rule(state, member, rule_id)["document"]
    return _submit(request, state, member, rule_id=rule_id, base=base, form=form)


@router.get("/rules/{rule_id}/enabled")
def confirm_enabled(request: Request, rule_id: str, state: State, member: Signed) -> Response:
    """Asks before enabling or disabling; a disable says how many reminders it cancels."""
    record = visible_rule(state, member, rule_id)
    return state.pages.render(
        request,
        "rules/enabled.html",
        record=record,
        rule=record["document"],
        enable=not record["document"].get("enabled", True),
        pending=record.get("pending_reminders", 0),
    )


@router.post("/rules/{rule_id}/enabled")
def set_enabled(
    request: Request, rule_id: str, state: State, member: Signed, enabled: Text = ""
) -> Response:
    record = visible_rule(state, member, rule_id)
    document = {**record["document"], "enabled": enabled == "true"}
    version = state.services.rules.save("rules", rule_id, document, actor=member.email)
    return RedirectResponse(f"/rules/{rule_id}?saved={version}", status_code=303)
