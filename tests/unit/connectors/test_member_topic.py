import asyncio

import orjson

from connectors.core import Delivery, Outcome
from connectors.member_topic import MemberTopicConnector, encode, member_view
from pipeline.producer import Refused


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


class Broker:
    """Stands in for the producer's batch send: records what was sent, refuses chosen topics."""

    def __init__(self, refuse=()):
        self.sent = []
        self.refuse = refuse

    async def send_batch(self, records):
        self.sent += records
        future = asyncio.get_running_loop().create_future()
        future.set_result([Refused(t, k, "broker down") for t, k, _, _ in records if t in self.refuse])
        return future


def connector(broker, fmt="json"):
    return MemberTopicConnector(broker.send_batch, lambda m: f"cwn.deliver.{m}", lambda m: fmt)


def test_send_batch_reports_per_item():
    broker = Broker(refuse={"cwn.deliver.m2"})
    target = connector(broker)
    batch = [Delivery("m1", "inside", alert()), Delivery("m2", "x", alert())]
    results = asyncio.run(target.send_batch(batch))
    assert [r.outcome for r in results] == [Outcome.DELIVERED, Outcome.RETRY]
    assert "broker down" in results[1].detail
    assert [t for t, _, _, _ in broker.sent] == ["cwn.deliver.m1", "cwn.deliver.m2"]
    assert target.health()["failed"] == 1


def test_tlp_above_ceiling_is_refused_not_sent():
    broker = Broker()
    target = connector(broker)
    target.tlp_ceiling = "GREEN"
    results = asyncio.run(target.send_batch([Delivery("m1", "inside", alert("AMBER"))]))
    assert results[0].outcome is Outcome.FAILED and not broker.sent


def test_each_member_gets_its_own_view_whatever_is_shared():
    broker = Broker()
    shared = alert("GREEN")
    batch = [Delivery(m, "subscription:sector", shared) for m in ("m1", "m2", "m3", "m4")]
    results = asyncio.run(connector(broker).send_batch(batch))
    assert all(r.outcome is Outcome.DELIVERED for r in results)
    views = {t.rsplit(".", 1)[1]: orjson.loads(v) for t, _, v, _ in broker.sent}
    for member_id, view in views.items():
        assert view == orjson.loads(encode(Delivery(member_id, "x", shared), "json")[0])
    assert views["m3"] == views["m4"] and views["m3"]["members_inside"] == []
    assert views["m1"]["members_inside"] == ["m1"] and views["m2"]["recipients"] == ["m2"]
    keys = [dict(h)["cwn.idempotency-key"] for _, _, _, h in broker.sent]
    assert keys == [b"a1:m1", b"a1:m2", b"a1:m3", b"a1:m4"]
