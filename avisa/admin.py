"""Talking to running services' admin APIs: rules and templates as code, keys, test events."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from schemas.documents import load_documents


class AdminError(Exception):
    """An admin call was refused; the message carries the service's problem detail."""


def _raise_for_problem(response: httpx.Response, what: str) -> None:
    if response.is_success:
        return
    try:
        problem = response.json()
        errors = "; ".join(f"{e['path']}: {e['message']}" for e in problem.get("errors", []))
        detail = f"{problem.get('detail', '')} {errors}".strip()
    except ValueError:
        detail = response.text[:500]
    raise AdminError(f"{what}: {response.status_code} {detail}")


@dataclass(frozen=True, slots=True)
class Document:
    kind: str  # "rules" or "templates"
    id: str
    body: dict[str, Any]
    path: Path


def read_documents(paths: Iterable[Path]) -> list[Document]:
    """Every YAML document under `paths`, templates before rules so references resolve."""
    files: list[Path] = []
    for path in paths:
        files += (
            sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml"))
            if path.is_dir()
            else [path]
        )
    documents = []
    for file in files:
        for body in load_documents(file.read_text(encoding="utf-8")):
            kind = "templates" if "locales" in body else "rules"
            documents.append(Document(kind=kind, id=str(body.get("id", "")), body=body, path=file))
    return sorted(documents, key=lambda d: d.kind != "templates")


def apply_documents(
    client: httpx.Client,
    documents: list[Document],
    progress: Callable[[int, int, Document, str], None] | None = None,
) -> dict[str, int]:
    """PUT each document; returns counts of created, updated and unchanged documents.

    `progress(done, total, document, outcome)` is called after each one.
    """
    counts = {"created": 0, "updated": 0, "unchanged": 0}
    for index, document in enumerate(documents, start=1):
        if not document.id:
            raise AdminError(f"{document.path}: a document has no 'id'")
        response = client.put(f"/v1/{document.kind}/{document.id}", json=document.body)
        _raise_for_problem(response, f"{document.path} ({document.kind}/{document.id})")
        result = response.json()
        outcome = (
            "unchanged"
            if not result.get("changed", True)
            else "created"
            if result.get("version") == 1
            else "updated"
        )
        counts[outcome] += 1
        if progress is not None:
            progress(index, len(documents), document, outcome)
    return counts


def export_documents(client: httpx.Client) -> list[dict[str, Any]]:
    """Every template and rule the service holds, as documents ready to write as YAML."""
    documents: list[dict[str, Any]] = []
    for kind in ("templates", "rules"):
        response = client.get(f"/v1/{kind}")
        _raise_for_problem(response, f"list {kind}")
        body = response.json()
        items = body.get("items", body) if isinstance(body, dict) else body
        documents += [item.get("document", item) for item in items]
    return documents


def create_agency_key(client: httpx.Client, agency: str, name: str | None) -> dict[str, Any]:
    """Create the agency if it is missing, then a new key for it (shown once)."""
    response = client.post("/v1/agencies", json={"id": agency, "name": name or agency})
    if response.status_code != 409:
        _raise_for_problem(response, f"create agency {agency}")
    response = client.post(f"/v1/agencies/{agency}/keys")
    _raise_for_problem(response, f"create key for {agency}")
    result: dict[str, Any] = response.json()
    return result


def example_event(*, source: str = "demo", event_id: str | None = None) -> dict[str, Any]:
    """The contract's example event, with a fresh id and a deadline 45 days ahead."""
    now = datetime.now(UTC)
    return {
        "specversion": "1.0",
        "id": event_id or f"{source}-{uuid.uuid4().hex[:12]}",
        "source": source,
        "type": "license.expiring",
        "subject": "license/B-12345678",
        "time": now.isoformat().replace("+00:00", "Z"),
        "data": {
            "citizen": {
                "id": "ES-12345678Z",
                "name": "Ana",
                "phone": "+34600111222",
                "email": "ana@example.es",
                "locale": "es",
                "timezone": "Europe/Madrid",
            },
            "category": "B",
            "expires_on": (now.date().fromordinal(now.date().toordinal() + 45)).isoformat(),
        },
    }


def send_event(client: httpx.Client, event: dict[str, Any]) -> dict[str, Any]:
    response = client.post(
        "/v1/events", json=event, headers={"Content-Type": "application/cloudevents+json"}
    )
    _raise_for_problem(response, "publish event")
    result: dict[str, Any] = response.json()
    return result
