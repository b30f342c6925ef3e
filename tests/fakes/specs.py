"""Request checks derived from the providers' official OpenAPI documents (tests/specs)."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPECS = Path(__file__).resolve().parent.parent / "specs"
_E164 = re.compile(r"^\+[1-9]\d{1,14}$")
_URI = re.compile(r"^https?://[^\s/_]+(?::\d+)?(/\S*)?$")


@cache
def load(name: str) -> dict[str, Any]:
    return json.loads((SPECS / name).read_text())


@cache
def _twilio_create_message() -> dict[str, Any]:
    spec = load("twilio_api_v2010.json")
    post = spec["paths"]["/2010-04-01/Accounts/{AccountSid}/Messages.json"]["post"]
    return post["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]


def twilio_message_errors(form: dict[str, str]) -> list[str]:
    """What Twilio's CreateMessage schema (and its documented either/or rules) refuses."""
    schema = _twilio_create_message()
    errors = [
        f"missing required parameter {name}"
        for name in schema.get("required", [])
        if not form.get(name)
    ]
    unknown = set(form) - set(schema["properties"])
    errors += [f"unknown parameter {name}" for name in sorted(unknown)]
    if not (form.get("From") or form.get("MessagingServiceSid")):
        errors.append("one of From or MessagingServiceSid is required")
    if not (form.get("Body") or form.get("MediaUrl") or form.get("ContentSid")):
        errors.append("one of Body, MediaUrl or ContentSid is required")
    for name, value in form.items():
        fmt = schema["properties"].get(name, {}).get("format")
        if fmt == "phone-number" and not _E164.match(value):
            errors.append(f"{name} is not an E.164 phone number")
        if fmt == "uri" and not _URI.match(value):
            errors.append(f"{name} is not a valid URI")
    return errors


@cache
def _sendgrid_validator() -> jsonschema.Draft202012Validator:
    spec = load("tsg_mail_v3.json")
    registry: Registry[Any] = Registry().with_resource(
        "urn:sendgrid", Resource.from_contents(spec, default_specification=DRAFT202012)
    )
    pointer = "urn:sendgrid#/components/requestBodies/PostMailSend/content/application~1json/schema"
    return jsonschema.Draft202012Validator(
        {"$ref": pointer}, registry=registry, format_checker=jsonschema.FormatChecker()
    )


def sendgrid_mail_errors(body: Any) -> list[str]:
    """What SendGrid's Mail Send schema refuses, as `path: message` lines."""
    validator = _sendgrid_validator()
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '(body)'}: {e.message}"
        for e in validator.iter_errors(body)
    ]
