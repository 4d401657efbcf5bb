import asyncio

import orjson

from connectors.core import Delivery, Outcome
from connectors.member_topic import MemberTopicConnector, encode, member_view


def alert(tlp="AMBER"):
    return {"id": "a1", "tlp": tlp, "members_inside": ["m1", "m2"], "recipients": ["m2"], "raw": b"x"}


def test_member_sees_no_other_member():
    view = member_view(alert(), "m1")
    assert view["members_inside"] == ["m1"]
    assert view["recipients"] == []
    assert view["raw"] is None


def test_encoding_carries_idempotency_key():
    value, headers = encode(Delivery("m1", "inside", alert()), "json")
    assert orjson.loads(value)["id"] == "a1"
    assert dict(headers)["cwn.idempotency-key"] == b"a1:m1"


def test_send_batch_reports_per_item():
    sent = []

    async def send(topic, key, value, headers):
        sent.append(topic)
        future = asyncio.get_running_loop().create_future()
        if topic.endswith("m2"):
            future.set_exception(RuntimeError("broker down"))
        else:
            future.set_result(None)
        return future

    connector = MemberTopicConnector(send, lambda m: f"cwn.deliver.{m}", lambda m: "json")
    results = asyncio.run(
        connector.send_batch([Delivery("m1", "inside", alert()), Delivery("m2", "x", alert())])
    )
    assert [r.outcome for r in results] == [Outcome.DELIVERED, Outcome.RETRY]
    assert sent == ["cwn.deliver.m1", "cwn.deliver.m2"]
    assert connector.health()["failed"] == 1
