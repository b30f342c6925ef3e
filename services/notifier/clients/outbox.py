"""Development providers: append what would be sent to JSON-lines files in the outbox folder."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services.notifier.clients.base import ProviderReceipt

Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class _JsonLines:
    """One JSON object a line, appended under a lock (shared by every writer in the process)."""

    _lock = threading.Lock()

    def __init__(self, path: Path) -> None:
        self._path = path

    def append(self, entry: Mapping[str, Any]) -> None:
        line = json.dumps(entry, ensure_ascii=False) + "\n"
        with self._lock:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            with self._path.open("a", encoding="utf-8") as file:
                file.write(line)


class OutboxSms:
    """Writes each SMS to `<outbox>/sms.jsonl` instead of sending it."""

    provider = "outbox"

    def __init__(self, directory: Path, *, clock: Clock = _utcnow) -> None:
        self._file = _JsonLines(directory / "sms.jsonl")
        self._clock = clock

    def send(self, *, to: str, body: str, notification_id: str) -> ProviderReceipt:
        reference = f"outbox-{uuid.uuid4().hex}"
        self._file.append(
            {
                "notification_id": notification_id,
                "to": to,
                "body": body,
                "at": self._clock().isoformat(),
                "reference": reference,
            }
        )
        return ProviderReceipt(provider=self.provider, reference=reference)


class OutboxEmail:
    """Writes each email to `<outbox>/email.jsonl` instead of sending it."""

    provider = "outbox"

    def __init__(self, directory: Path, *, clock: Clock = _utcnow) -> None:
        self._file = _JsonLines(directory / "email.jsonl")
        self._clock = clock

    def send(
        self,
        *,
        to: str,
        subject: str,
        text: str,
        html: str,
        notification_id: str,
        headers: Mapping[str, str],
    ) -> ProviderReceipt:
        reference = f"outbox-{uuid.uuid4().hex}"
        self._file.append(
            {
                "notification_id": notification_id,
                "to": to,
                "subject": subject,
                "text": text,
                "html": html,
                "headers": dict(headers),
                "at": self._clock().isoformat(),
                "reference": reference,
            }
        )
        return ProviderReceipt(provider=self.provider, reference=reference)
