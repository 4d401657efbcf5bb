from hypothesis import given
from hypothesis import strategies as st

from pipeline.security.acl import (
    Grant,
    connect_grants,
    member_grants,
    member_group_prefix,
    producer_grants,
    worker_grants,
)
from pipeline.settings import Settings
from pipeline.topics import RAW, member_topic

SETTINGS = Settings(namespace="prod")
member_ids = st.from_regex(r"[a-z0-9][a-z0-9-]{0,20}", fullmatch=True)


def matches(grant: Grant, resource: str, name: str) -> bool:
    if grant.resource != resource:
        return False
    return name.startswith(grant.name) if grant.prefixed else name == grant.name


def test_a_member_may_read_and_describe_its_topic_and_use_its_groups():
    grants = member_grants(SETTINGS, "m42")
    assert {(g.resource, g.name, g.operation, g.prefixed) for g in grants} == {
        ("topic", "prod.cwn.deliver.m42", "READ", False),
        ("topic", "prod.cwn.deliver.m42", "DESCRIBE", False),
        ("group", "prod.member.m42.", "READ", True),
    }
    assert {g.principal for g in grants} == {"User:member-m42"}


@given(member_ids, member_ids, st.text("abcdefghij-.", max_size=10))
def test_no_grant_of_one_member_reaches_another(a, b, suffix):
    if a == b:
        return
    for grant in member_grants(SETTINGS, a):
        assert not matches(grant, "topic", member_topic(SETTINGS, b))
        assert not matches(grant, "group", member_group_prefix(SETTINGS, b) + suffix)
        assert grant.operation in ("READ", "DESCRIBE")


def test_partners_write_their_own_raw_topic_only():
    grants = producer_grants(SETTINGS, "sensor-net")
    own = SETTINGS.topic(RAW) + ".sensor-net"
    assert {(g.name, g.operation, g.prefixed) for g in grants} == {
        (own, "WRITE", False),
        (own, "DESCRIBE", False),
    }
    assert not any(matches(g, "topic", SETTINGS.topic(RAW)) for g in grants)
    assert not any(matches(g, "topic", SETTINGS.topic(RAW) + ".sensor-net2") for g in grants)


def test_pipeline_principals_never_read_member_topics_they_do_not_need():
    worker = worker_grants(SETTINGS)
    m1 = member_topic(SETTINGS, "m1")
    assert not any(matches(g, "topic", m1) and g.operation == "READ" for g in worker)
    assert any(matches(g, "topic", m1) and g.operation == "WRITE" for g in worker)
    connect = connect_grants(SETTINGS)
    assert not any(g.operation in ("WRITE", "CREATE") and matches(g, "topic", member_topic(SETTINGS, "m1"))
                   for g in connect)  # fmt: skip
    assert not any(matches(g, "topic", SETTINGS.topic(RAW)) for g in connect)
