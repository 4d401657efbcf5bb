"""Settings of the connector runners, from `CWN_CONNECT_*` variables, strict and frozen.

The Kafka side (bootstrap, security, namespace) comes from the pipeline's one settings model;
these are the delivery side's: retries, the circuit breaker, queues, the network allow-list,
where secrets are, and each connector's own options.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from connectors.breaker import CircuitBreaker
from connectors.netguard import AllowList
from connectors.retry import RetryPolicy

PREFIX = "CWN_CONNECT_"


class ConnectSettings(BaseSettings):
    """Every connector runner reads these once at start-up."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, extra="forbid", frozen=True)

    secrets_dir: Path | None = Field(default=None, description="Directory of secret files.")
    allow_internal: str = Field(
        default="",
        description="Comma-separated networks (CIDR) and host names that may be connected to "
        "although internal, e.g. `10.20.0.0/16,siem.member.example`.",
    )
    ca_file: Path | None = Field(default=None, description="Extra CA certificates to trust.")
    send_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    retry_base_seconds: float = Field(default=0.5, gt=0)
    retry_cap_seconds: float = Field(default=60.0, gt=0)
    max_attempts: int = Field(default=8, ge=1, le=100)
    max_elapsed_seconds: float = Field(default=900.0, gt=0)
    breaker_threshold: int = Field(default=5, ge=1)
    breaker_cooldown_seconds: float = Field(default=5.0, gt=0)
    breaker_max_cooldown_seconds: float = Field(default=300.0, gt=0)
    queue_limit: int = Field(
        default=2_000, ge=1, description="Deliveries held per endpoint before its topic is paused."
    )
    max_in_flight: int = Field(default=256, ge=1, description="Sends under way at once, all endpoints.")
    linger_seconds: float = Field(default=0.2, ge=0, description="Longest wait to fill a batch.")
    commit_seconds: float = Field(default=1.0, gt=0, le=60)
    digest_seconds: float = Field(default=300.0, gt=0, description="E-mail digest interval.")
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_starttls: bool = Field(default=True, description="Refuse to send without STARTTLS.")
    smtp_username: str = ""
    smtp_password: SecretStr = SecretStr("")
    smtp_from: str = "alerts@cwn.invalid"
    taxii_host: str = "0.0.0.0"
    taxii_port: int = Field(default=9443, ge=0, le=65535)
    taxii_cert_file: Path | None = None
    taxii_key_file: Path | None = None
    taxii_store: Path = Path(".cwn/taxii.sqlite")
    taxii_page_size: int = Field(default=100, ge=1, le=10_000)
    file_root: Path = Field(default=Path(".cwn/outbox"), description="File targets live under it.")
    file_max_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    file_max_seconds: float = Field(default=3600.0, gt=0)

    @property
    def retry(self) -> RetryPolicy:
        return RetryPolicy(
            self.retry_base_seconds, self.retry_cap_seconds, self.max_attempts, self.max_elapsed_seconds
        )

    @property
    def allow(self) -> AllowList:
        return AllowList.parse(self.allow_internal.split(","))

    def breaker(self) -> CircuitBreaker:
        return CircuitBreaker(
            self.breaker_threshold, self.breaker_cooldown_seconds, self.breaker_max_cooldown_seconds
        )


def load_connect_settings(environ: dict[str, str] | None = None, **overrides: object) -> ConnectSettings:
    """Validate `CWN_CONNECT_*` variables; an unknown one is an error that names it."""
    env = os.environ if environ is None else environ
    known = {PREFIX + name.upper() for name in ConnectSettings.model_fields}
    unknown = sorted(k for k in env if k.startswith(PREFIX) and k not in known)
    if unknown:
        raise ValueError(
            f"unknown connector setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    return ConnectSettings(**overrides)
