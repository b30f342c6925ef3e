"""The fake SendGrid's event webhook: a signed `processed` event for each accepted email,
posted in batches to the receiver and retried until it takes them, as SendGrid does."""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
import urllib.request
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec


@dataclass(frozen=True)
class EventSink:
    """Where and how the fake posts SendGrid events: the receiver's URL and the signing key."""

    url: str
    private_key: ec.EllipticCurvePrivateKey
    every_s: float = 0.3


class EventQueue(Protocol):
    """The fake's state as the poster reads it: the sink, the events waiting, one lock."""

    lock: threading.Lock
    event_sink: EventSink | None
    events: list[dict[str, Any]]
    events_posted: int


def processed_events(body: dict[str, Any], message_id: str) -> list[dict[str, Any]]:
    """SendGrid's `processed` event for each recipient, custom args at the top level."""
    out: list[dict[str, Any]] = []
    for personalization in body.get("personalizations", []):
        custom = personalization.get("custom_args") or {}
        for recipient in personalization.get("to", []):
            out.append(
                {
                    **custom,
                    "email": recipient["email"],
                    "timestamp": int(time.time()),
                    "event": "processed",
                    "sg_event_id": secrets.token_urlsafe(16),
                    "sg_message_id": f"{message_id}.filterdrecv-fake-{len(out)}",
                }
            )
    return out


def sign_events(private_key: ec.EllipticCurvePrivateKey, payload: str) -> dict[str, str]:
    """SendGrid's signature headers: ECDSA (P-256, SHA-256) over timestamp + payload."""
    timestamp = str(int(time.time()))
    signature = private_key.sign((timestamp + payload).encode(), ec.ECDSA(hashes.SHA256()))
    return {
        "Content-Type": "application/json",
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
    }


def post_events(state: EventQueue) -> None:
    """Post the events waiting, in order; on any failure they stay for the next round."""
    with state.lock:
        sink, events = state.event_sink, list(state.events)
    if sink is None or not events:
        return
    payload = json.dumps(events)
    request = urllib.request.Request(
        sink.url, data=payload.encode(), headers=sign_events(sink.private_key, payload)
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            ok = 200 <= answer.status < 300
    except OSError:  # refused (the receiver is down), an HTTP error, a timeout
        ok = False
    if ok:
        with state.lock:
            if state.events[: len(events)] == events:
                del state.events[: len(events)]
                state.events_posted += len(events)
