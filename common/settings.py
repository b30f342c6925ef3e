"""Settings every service shares; each service subclasses `CommonSettings` in its `config`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.topics import Topics

DEV_ADMIN_KEY = "dev-admin-key"
DEV_AGENCY_ID = "demo"
DEV_AGENCY_KEY = "demo-agency-key"


@dataclass(frozen=True, slots=True)
class HttpTimeouts:
    """How long a client may take to send a request's headers, then its body
    (`common.http_timeouts` enforces them)."""

    header_s: float = 10.0
    body_s: float = 30.0


class ConfigurationError(Exception):
    """The settings cannot run safely (e.g. production without an admin key)."""


class CommonSettings(BaseSettings):
    """Environment variables with the `AVISA_` prefix (CONTRACT.md, "Configuration")."""

    model_config = SettingsConfigDict(env_prefix="AVISA_", extra="ignore")

    kafka_bootstrap: str = "127.0.0.1:9092"
    topic_prefix: str = "avisa."
    topic_partitions: int = 6
    database_url: str = "sqlite:///var/avisa.db"
    admin_key: SecretStr | None = None
    env: Literal["production", "development"] = "production"
    public_url: str = "http://127.0.0.1:8003"
    default_timezone: str = "Europe/Madrid"
    default_locale: str = "es"
    log_level: str = "INFO"
    kafka_session_timeout_ms: int = 10_000
    kafka_heartbeat_interval_ms: int = 1_000
    kafka_ack_timeout_s: float = 10.0
    consumer_group_prefix: str = "avisa-"
    # How deep arrays and objects may nest in any JSON body a service is sent (422 beyond).
    json_max_depth: int = Field(default=64, ge=2, le=500)
    # A client must send a request's headers, then its body, within these (408 and closed).
    http_header_timeout_s: float = Field(default=10.0, gt=0)
    http_body_timeout_s: float = Field(default=30.0, gt=0)

    @property
    def development(self) -> bool:
        return self.env == "development"

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_prefix)

    def group_id(self, role: str) -> str:
        """The consumer group of one role, e.g. `avisa-rules`; give each role its own group."""
        return f"{self.consumer_group_prefix}{role}"

    @property
    def bootstrap_servers(self) -> list[str]:
        return [server.strip() for server in self.kafka_bootstrap.split(",") if server.strip()]

    def http_timeouts(self) -> HttpTimeouts:
        return HttpTimeouts(header_s=self.http_header_timeout_s, body_s=self.http_body_timeout_s)

    def effective_admin_key(self) -> str:
        """The admin key in force: the configured one, else the fixed key in development."""
        if self.admin_key is not None and self.admin_key.get_secret_value():
            return self.admin_key.get_secret_value()
        if self.development:
            return DEV_ADMIN_KEY
        raise ConfigurationError("AVISA_ADMIN_KEY is required outside development mode")

    def check_production_safety(self) -> None:
        """Refuse to run in production with development-only keys."""
        key = self.effective_admin_key()
        if not self.development and key == DEV_ADMIN_KEY:
            raise ConfigurationError("the development admin key is refused in production")
