"""Settings of the staff console."""

from __future__ import annotations

import hashlib

from pydantic import SecretStr

from common.settings import CommonSettings, ConfigurationError

DEV_STAFF_EMAIL = "admin@demo.avisa.es"
DEV_STAFF_PASSWORD = "avisa-demo-console"  # noqa: S105 - the printed development account


class Settings(CommonSettings):
    """`AVISA_*` environment variables; the console-only ones start with `AVISA_CONSOLE_`."""

    console_secret: SecretStr | None = None
    """Signs the session and CSRF cookies; required in production, derived in development."""

    events_url: str = "http://127.0.0.1:8001"
    rules_url: str = "http://127.0.0.1:8002"
    notifier_url: str = "http://127.0.0.1:8003"

    console_idle_minutes: float = 30.0
    """A session not used for this long ends."""

    console_absolute_hours: float = 8.0
    """A session ends this long after sign-in, used or not."""

    console_lockout_after: int = 5
    """Failed sign-ins in a row after which the account is slowed down."""

    console_lockout_seconds: float = 30.0
    """The first wait once slowed down; it doubles with each further failure (at most 15 min)."""

    console_service_timeout_s: float = 10.0

    console_cookie_secure: bool | None = None
    """Mark cookies Secure (HTTPS only); by default yes outside development mode."""

    def effective_secret(self) -> bytes:
        """The key that signs cookies: the configured one, else one derived in development."""
        if self.console_secret is not None and self.console_secret.get_secret_value():
            return self.console_secret.get_secret_value().encode()
        if self.development:
            # Stable across restarts of `make run`, so a reload keeps you signed in.
            seed = f"avisa-console-dev:{self.effective_admin_key()}".encode()
            return hashlib.sha256(seed).digest()
        raise ConfigurationError("AVISA_CONSOLE_SECRET is required outside development mode")

    def check_console_safety(self) -> None:
        """Refuse to run in production without a secret or with the development admin key."""
        self.check_production_safety()
        self.effective_secret()
