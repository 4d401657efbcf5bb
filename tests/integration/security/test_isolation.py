"""Member isolation on the secured broker: each refusal is an authorization error, at once."""

from __future__ import annotations

import time

import orjson
import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from pydantic import SecretStr

from pipeline.control import publish_members
from pipeline.directory import Member
from pipeline.kafka import client_config, make_producer
from pipeline.security.acl import member_group_prefix, member_principal
from pipeline.topics import RAW, member_topic
from tests.integration.security.conftest import as_principal
from tests.integration.test_cli import cwn_env

pytestmark = pytest.mark.integration

AUTHZ = {KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.GROUP_AUTHORIZATION_FAILED}


def consumer(settings, group: str) -> Consumer:
    return Consumer(
        client_config(settings)
        | {"group.id": group, "auto.offset.reset": "earliest", "enable.auto.commit": False}
    )


def first_error_or_value(c: Consumer, seconds: float = 30) -> tuple[int | None, bytes | None]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        message = c.poll(0.5)
        if message is None:
            continue
        if message.error() is not None:
            return message.error().code(), None
        return None, message.value()
    return None, None


def setup_members(admin, provisioner):
    publish_members(admin, [Member(id="ma", name="A"), Member(id="mb", name="B")])
    producer = make_producer(admin)
    for member_id in ("ma", "mb"):
        producer.produce(member_topic(admin, member_id), orjson.dumps({"for": member_id}))
    assert producer.flush(30) == 0
    passwords = {m: provisioner.provision_member(admin, m) for m in ("ma", "mb")}
    return {m: as_principal(admin, member_principal(m), p) for m, p in passwords.items()}


def test_a_member_reads_its_own_topic_and_nothing_else(admin, provisioner):
    members = setup_members(admin, provisioner)
    a = members["ma"]

    own = consumer(a, member_group_prefix(admin, "ma") + "siem")
    own.subscribe([member_topic(admin, "ma")])
    assert first_error_or_value(own) == (None, b'{"for":"ma"}')
    own.close()

    # Subscribe to B's topic under its own group: refused as unauthorized.
    other = consumer(a, member_group_prefix(admin, "ma") + "snoop")
    other.subscribe([member_topic(admin, "mb")])
    code, value = first_error_or_value(other)
    assert value is None and code == KafkaError.TOPIC_AUTHORIZATION_FAILED
    other.close()

    # Describe B's topic: the metadata answer says unauthorized.
    probe = consumer(a, member_group_prefix(admin, "ma") + "probe")
    metadata = probe.list_topics(member_topic(admin, "mb"), timeout=10)
    assert metadata.topics[member_topic(admin, "mb")].error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    visible = set(probe.list_topics(timeout=10).topics)
    probe.close()
    assert member_topic(admin, "mb") not in visible and member_topic(admin, "ma") in visible

    # Join a group under B's prefix, even on its own topic: refused.
    joined = consumer(a, member_group_prefix(admin, "mb") + "siem")
    joined.subscribe([member_topic(admin, "ma")])
    code, value = first_error_or_value(joined)
    joined.close()
    assert value is None and code == KafkaError.GROUP_AUTHORIZATION_FAILED


@pytest.mark.parametrize("target", ["own member topic", "raw topic"])
def test_a_member_cannot_write_anything(admin, provisioner, target):
    a = setup_members(admin, provisioner)["ma"]
    topic = member_topic(admin, "ma") if target == "own member topic" else admin.topic(RAW)
    errors = []
    producer = Producer(client_config(a) | {"message.timeout.ms": 20_000})
    producer.produce(topic, b"forged", on_delivery=lambda error, _m: errors.append(error))
    producer.flush(30)
    assert [e.code() for e in errors] == [KafkaError.TOPIC_AUTHORIZATION_FAILED]


def authenticates(settings) -> bool:
    """Whether the broker accepts these credentials; a refusal must be an authentication error
    (an answer from the broker), never a timeout."""
    failures = []
    c = Consumer(client_config(settings) | {"group.id": "x", "error_cb": failures.append})
    try:
        c.list_topics(timeout=15)
        return True
    except KafkaException:
        for _ in range(20):  # error callbacks are served by poll
            c.poll(0.25)
            if any(f.code() == KafkaError._AUTHENTICATION for f in failures):
                return False
        raise AssertionError(f"refused without an authentication error: {failures}") from None
    finally:
        c.close()


def test_rotation_and_revocation_apply_without_a_restart(admin, provisioner):
    members = setup_members(admin, provisioner)
    old = members["ma"]
    assert authenticates(old)
    new_password = provisioner.provision_member(admin, "ma", rotate=True)
    new = as_principal(admin, member_principal("ma"), new_password)
    assert authenticates(new)
    assert not authenticates(old)
    provisioner.revoke_member("ma")
    assert not authenticates(new)
    assert authenticates(members["mb"])


def test_cli_credentials_are_what_a_members_siem_needs(admin, secure_broker):
    import subprocess
    import sys

    publish_members(admin, [Member(id="mc", name="C")])
    producer = make_producer(admin)
    producer.produce(member_topic(admin, "mc"), b'{"for":"mc"}')
    assert producer.flush(30) == 0
    env = cwn_env(admin, secure_broker.client_env())
    shown = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "members", "credentials", "mc", "--json"],
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr.decode()[-2000:]
    creds = orjson.loads(shown.stdout)
    assert set(creds) == {"bootstrap", "security_protocol", "sasl_mechanism", "username", "password",
                          "ca_file", "topic", "group_prefix"}  # fmt: skip
    assert creds["username"] == "member-mc" and creds["topic"] == member_topic(admin, "mc")
    siem = Consumer(
        {
            "bootstrap.servers": creds["bootstrap"],
            "security.protocol": creds["security_protocol"],
            "sasl.mechanisms": creds["sasl_mechanism"],
            "sasl.username": creds["username"],
            "sasl.password": creds["password"],
            "ssl.ca.location": creds["ca_file"],
            "group.id": creds["group_prefix"] + "siem",
            "auto.offset.reset": "earliest",
        }
    )
    siem.subscribe([creds["topic"]])
    assert first_error_or_value(siem) == (None, b'{"for":"mc"}')
    siem.close()
    remove = [sys.executable, "-m", "pipeline.cli", "members", "remove", "mc"]
    removed = subprocess.run(remove, env=env, capture_output=True, timeout=120)
    assert removed.returncode == 0, removed.stderr.decode()[-2000:]
    gone = as_principal(admin, creds["username"], SecretStr(creds["password"]))
    assert not authenticates(gone)
