"""A secured broker for the session (SASL/SCRAM over TLS, StandardAuthorizer, no ACL no access),
started next to the plain one, and per-test namespaces on it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from pipeline.broker import LocalBroker
from pipeline.demo.run import cleanup_namespace, free_ports
from pipeline.kafka import ensure_topics
from pipeline.security.provision import CredentialStore, Provisioner
from pipeline.settings import Settings
from pipeline.topics import pipeline_topics


@pytest.fixture(scope="session")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    broker = LocalBroker(home=tmp_path_factory.mktemp("kafka-secure"), port=free_ports(3), secure=True)
    broker.up()
    try:
        yield broker
    finally:
        broker.down()


@pytest.fixture
def admin(secure_broker: LocalBroker, tmp_path: Path) -> Iterator[Settings]:
    """The administrator's settings in a namespace of the test's own."""
    s = secure_broker.client_settings(
        namespace=f"s{uuid.uuid4().hex[:10]}",
        partitions=2,
        state_dir=tmp_path,
        data_dir=tmp_path / "worker",
        metrics_port=0,
        log_level="info",
    )
    ensure_topics(s, pipeline_topics(s))
    yield s
    cleanup_namespace(s, s.namespace + ".")


@pytest.fixture
def provisioner(admin: Settings) -> Provisioner:
    return Provisioner(admin, CredentialStore(admin.state_dir / "credentials"))


def as_principal(admin: Settings, username: str, password: str | SecretStr) -> Settings:
    """The same broker and namespace, as another principal."""
    secret = password if isinstance(password, SecretStr) else SecretStr(password)
    return admin.model_copy(update={"sasl_username": username, "sasl_password": secret})
