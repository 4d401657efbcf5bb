"""One typed settings model for every CWN process.

Values come from `CWN_*` environment variables (and `KAFKA_BOOTSTRAP` for the broker address),
are validated once at start-up, and are frozen afterwards. An unknown `CWN_*` variable is an
error that names it, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_PREFIX = "CWN_"


class Settings(BaseSettings):
    """Settings shared by the workers, the CLI, the demo and the local broker."""

    model_config = SettingsConfigDict(env_prefix=_PREFIX, extra="forbid", frozen=True)

    bootstrap: str = Field(
        default="127.0.0.1:9092",
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP", "CWN_BOOTSTRAP", "bootstrap"),
        description="Kafka bootstrap servers, host:port[,host:port...].",
    )
    namespace: str = Field(
        default="",
        pattern=r"^[a-z0-9-]*$",
        description="Prefix for every topic and the consumer group, so several pipelines can share "
        "one cluster (tests use it for isolation). Empty in production.",
    )
    app_id: str = Field(default="cwn-pipeline", description="Faust application id and group id.")
    partitions: int = Field(default=4, ge=1, le=1024, description="Partitions of data topics.")
    replication: int = Field(default=1, ge=1, le=7, description="Replication factor of topics.")
    data_retention_hours: int = Field(default=168, ge=1, description="Retention of data topics.")
    store: Literal["rocksdb", "memory"] = Field(
        default="rocksdb", description="Table store: RocksDB (durable local state) or memory."
    )
    data_dir: Path = Field(default=Path(".cwn/worker"), description="Worker state directory.")
    state_dir: Path = Field(default=Path(".cwn"), description="Local broker, demo and cache directory.")
    dedup_window_seconds: int = Field(default=24 * 3600, ge=1, description="Dedup window.")
    max_message_bytes: int = Field(default=512 * 1024, ge=1024, description="Largest raw record accepted.")
    batch_size: int = Field(default=500, ge=1, le=100_000, description="Records per agent batch.")
    batch_seconds: float = Field(default=0.01, gt=0, le=10, description="Longest batch wait.")
    linger_ms: float = Field(
        default=0,
        ge=0,
        le=1000,
        description="How long the stages' producers wait for more records before sending a "
        "request. 0 sends at once, the lowest latency; under load, records still gather into "
        "full requests while earlier ones are in flight.",
    )
    fetch_wait_ms: int = Field(
        default=20, ge=1, le=5000, description="Longest time the broker may hold a worker's fetch."
    )
    member_topic_clients: int = Field(
        default=4,
        ge=1,
        le=32,
        description="Kafka producers (each with its own broker connection) the routing stage "
        "spreads the member topics over, at least once. librdkafka sends one request per "
        "partition and the broker serves one request per connection at a time, so one "
        "connection queues the routing writes behind each other.",
    )
    member_topic_writer: Literal["process", "clients"] = Field(
        default="process",
        description="How the routing stage writes the audit stream and member topics, at least "
        "once: process, through one aiokafka producer in a child process of the worker, whose "
        "requests each carry every partition ready for a broker; clients, through "
        "CWN_MEMBER_TOPIC_CLIENTS confluent-kafka producers in the worker (one produce request "
        "per partition).",
    )
    session_timeout_seconds: float = Field(
        default=10.0,
        ge=6,
        le=300,
        description="How long the group waits for a silent worker before moving its partitions; "
        "after SIGKILL, a restarted worker waits this long before it gets them back.",
    )
    stall_seconds: float = Field(
        default=90.0,
        ge=15,
        le=3600,
        description="A worker that makes no progress for this long ends itself (exit 70) for its "
        "orchestrator to restart it. At least once: a partition it holds has had records waiting "
        "and no new commit (judged from the lag measured every 10 s, while the worker is ready). "
        "Exactly once: a Kafka client call has not returned; the client itself gives up on a call "
        "after two thirds of it.",
    )
    restart_for_new_topics: bool = Field(
        default=True,
        description="At least once, a worker that finds a producer's own raw topic it does not "
        "read (made after it started, by `cwn feeds import`) stops cleanly (exit 0) for its "
        "orchestrator to restart it, and the restarted worker reads the topic. Off: it only "
        "counts and names the topic (`cwn_unread_producer_topics`) until restarted by hand.",
    )
    processing_guarantee: Literal["at_least_once", "exactly_once"] = Field(
        default="at_least_once",
        description="at_least_once: Faust agents, a crash may repeat a batch's writes. exactly_once: "
        "each stage reads, writes and commits in Kafka transactions (see pipeline.transactional); "
        "readers that read committed records see every output once.",
    )
    instance: str = Field(
        default_factory=socket.gethostname,
        pattern=r"^[A-Za-z0-9._-]{1,100}$",
        description="This worker's stable name (the pod's name); exactly-once transactional ids are "
        "made from it, so a restarted worker aborts what its predecessor left open. Two live "
        "workers must not share it.",
    )
    metrics_port: int = Field(default=9464, ge=0, le=65535, description="0 disables /metrics.")
    log_level: Literal["debug", "info", "warn", "error"] = "warn"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT", description="How every Kafka client of the process connects."
    )
    sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = "SCRAM-SHA-512"
    sasl_username: str = Field(default="", description="The client's principal, for SASL.")
    sasl_password: SecretStr = Field(default=SecretStr(""), description="Its password; never logged.")
    ssl_ca_file: Path | None = Field(default=None, description="CA certificate(s) to trust, for SSL.")

    @model_validator(mode="after")
    def _sasl_has_credentials(self) -> Settings:
        if self.security_protocol.startswith("SASL") and not (
            self.sasl_username and self.sasl_password.get_secret_value()
        ):
            raise ValueError(
                f"security_protocol {self.security_protocol} needs sasl_username and sasl_password"
            )
        return self

    @field_validator("bootstrap")
    @classmethod
    def _bootstrap_has_port(cls, value: str) -> str:
        for server in value.split(","):
            host, _, port = server.strip().rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"expected host:port, got {server!r}")
        return value

    def topic(self, name: str) -> str:
        """Return the full topic name for a design topic name such as `cwn.alerts.raw`."""
        return f"{self.namespace}.{name}" if self.namespace else name

    @property
    def group_id(self) -> str:
        return f"{self.namespace}.{self.app_id}" if self.namespace else self.app_id


def check_environment(environ: dict[str, str] | None = None) -> None:
    """Reject unknown `CWN_*` variables by name before they are silently ignored."""
    env = os.environ if environ is None else environ
    known = {f"{_PREFIX}{name.upper()}" for name in Settings.model_fields}
    # The connectors' own settings and secrets are checked by their own models.
    theirs = (f"{_PREFIX}CONNECT_", f"{_PREFIX}SECRET_")
    unknown = sorted(k for k in env if k.startswith(_PREFIX) and k not in known and not k.startswith(theirs))
    if unknown:
        raise ValueError(f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")


def load_settings(**overrides: object) -> Settings:
    """Read and validate the settings from the environment, with explicit overrides on top."""
    check_environment()
    return Settings(**overrides)
