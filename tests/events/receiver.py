"""A local HTTP endpoint standing in for an agency's callback receiver, and a status emitter."""

from __future__ import annotations

import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from common.kafka import OutgoingMessage, Producer
from schemas.events import EventRef
from schemas.notifications import Channel, Status, StatusChange

DOCS = Path(__file__).resolve().parents[2] / "docs" / "callbacks.md"


def documented_verifier() -> Any:
    """`verify_avisa_signature` exactly as docs/callbacks.md shows it to agencies."""
    text = DOCS.read_text()
    [code] = [
        block for block in re.findall(r"```python\n(.*?)```", text, re.S) if "def verify" in block
    ]
    namespace: dict[str, Any] = {}
    exec(compile(code, str(DOCS), "exec"), namespace)
    return namespace["verify_avisa_signature"]


@dataclass
class Received:
    body: dict[str, Any]
    headers: dict[str, str]
    verified: bool


@dataclass
class Receiver:
    """Records each POST, checks its signature with the documented snippet, answers by script."""

    secret: str
    script: list[int] = field(default_factory=list)
    default: int = 200
    received: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        verify = documented_verifier()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                signature = self.headers.get("Avisa-Signature", "")
                receiver.received.append(
                    Received(
                        json.loads(body),
                        dict(self.headers),
                        verify(receiver.secret, body, signature),
                    )
                )
                status = receiver.script.pop(0) if receiver.script else receiver.default
                self.send_response(status)
                if status == 429:
                    self.send_header("Retry-After", "0")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/avisa/status"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def status_changes(source: str, count: int, status: Status = Status.SENT) -> list[StatusChange]:
    at = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
    ref = EventRef(source=source, id=f"ev-{uuid.uuid4().hex[:8]}", type="t.x", subject="case/1")
    return [
        StatusChange(
            notification_id=str(uuid.uuid4()),
            event=ref,
            rule="aviso",
            status=status,
            channel=Channel.SMS,
            at=at + timedelta(seconds=i),
            detail=f"step {i}",
            provider_reference="SM-internal",
        )
        for i in range(count)
    ]


def emit(settings: Any, changes: list[StatusChange]) -> None:
    """Publish status changes on the settings' status.v1, as the notifier would."""
    producer = Producer([settings.kafka_bootstrap], client_id="test-status")
    try:
        producer.publish(
            [
                OutgoingMessage(
                    topic=settings.topics.status,
                    key=change.notification_id,
                    value=change.model_dump_json().encode(),
                )
                for change in changes
            ]
        )
    finally:
        producer.close()
