"""Signed one-click unsubscribe tokens: a citizen and a channel, unforgeable without the key."""

from __future__ import annotations

import base64
import hashlib
import hmac

_SEPARATOR = "\x1f"
_MAC_BYTES = 16


def unsubscribe_secret(admin_key: str) -> bytes:
    """The signing key, derived from the admin key so no extra secret must be configured."""
    return hmac.new(admin_key.encode(), b"avisa-unsubscribe-v1", hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: bytes, payload: bytes) -> bytes:
    return hmac.new(secret, payload, hashlib.sha256).digest()[:_MAC_BYTES]


def sign(secret: bytes, *, citizen_id: str, channel: str) -> str:
    """A URL-safe token naming `citizen_id` and `channel`."""
    payload = f"{citizen_id}{_SEPARATOR}{channel}".encode()
    return f"{_b64(payload)}.{_b64(_mac(secret, payload))}"


def verify(secret: bytes, token: str) -> tuple[str, str] | None:
    """`(citizen_id, channel)` when the token is genuine, else None."""
    encoded, _, mac = token.partition(".")
    try:
        payload, given = _unb64(encoded), _unb64(mac)
    except ValueError:
        return None
    if not hmac.compare_digest(given, _mac(secret, payload)):
        return None
    citizen_id, separator, channel = payload.decode(errors="replace").partition(_SEPARATOR)
    return (citizen_id, channel) if separator else None
