"""Structured JSON logs with phone numbers and email addresses masked."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

_PHONE = re.compile(r"\+\d{6,15}")
_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})")
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
_SECRET_FIELDS = {"body", "text", "html", "subject", "authorization", "key", "secret", "token"}


def mask_phone(match: re.Match[str]) -> str:
    number = match.group(0)
    return f"{number[:3]}{'*' * (len(number) - 6)}{number[-3:]}"


def mask(text: str) -> str:
    """Mask every phone number (+34******222) and email (a***@example.es) in `text`."""
    text = _PHONE.sub(mask_phone, text)
    return _EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)


def _clean(key: str, value: Any) -> Any:
    if key.lower() in _SECRET_FIELDS:
        return "[redacted]"
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, int | float | bool) or value is None:
        return value
    return mask(str(value))


class JsonFormatter(logging.Formatter):
    """One JSON object a line; message and extra fields masked, message bodies redacted."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self._service,
            "logger": record.name,
            "msg": mask(record.getMessage()),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = _clean(key, value)
        if record.exc_info:
            entry["error"] = mask(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(service: str, level: str = "INFO") -> None:
    """Send every log record to stderr as masked JSON. Called from `main`, never at import."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("kafka", "twilio.http_client", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
