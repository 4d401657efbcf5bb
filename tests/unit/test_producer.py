import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.producer import _Acks


class Message:
    def __init__(self, topic, key):
        self._topic, self._key = topic, key

    def topic(self):
        return self._topic

    def key(self):
        return self._key


def test_resolves_once_every_report_is_in_even_when_reports_come_first():
    async def scenario():
        acks = _Acks(asyncio.get_running_loop())
        acks.expect(3)
        # Reports are served between the agent's awaits, some before the batch is sealed.
        for _ in range(2):
            acks.report(None, Message("t", b"k"))
        future = acks.seal()
        await asyncio.sleep(0.01)
        assert not future.done(), "resolved with a record still unanswered"
        assert not acks.answered
        asyncio.get_running_loop().call_soon(acks.report, "boom", Message("t", b"k3"))
        return await asyncio.wait_for(future, 5)

    refused = asyncio.run(scenario())
    assert [(r.topic, r.key, r.error) for r in refused] == [("t", b"k3", "boom")]


def test_an_empty_batch_resolves_at_once():
    async def scenario():
        return await asyncio.wait_for(_Acks(asyncio.get_running_loop()).seal(), 5)

    assert asyncio.run(scenario()) == []


def test_a_report_after_the_loop_closed_is_harmless():
    loop = asyncio.new_event_loop()
    acks = _Acks(loop)
    acks.expect(1)
    future = acks.seal()
    loop.run_until_complete(asyncio.sleep(0))
    future.add_done_callback(lambda _: None)
    loop.close()
    acks.report(None, Message("t", b"k"))  # as `close` serves the last reports
    assert acks.answered


class FakeClient:
    """Stands in for the client's queue: reports are served by `poll`, as librdkafka does.

    A held client keeps its reports until released, as a client whose broker is slow."""

    def __init__(self, held=False):
        self.reports, self.written, self.held = [], [], held

    def produce(self, topic, value, key, headers=None, on_delivery=None):
        self.written.append((topic, key))
        self.reports.append((on_delivery, Message(topic, key)))

    def poll(self, timeout):
        if self.held:
            return 0
        served, self.reports = self.reports, []
        for report, message in served:
            report(None, message)
        return len(served)

    def flush(self, timeout):
        return len(self.reports) if self.held else self.poll(0) and 0


def producer_over(*clients):
    from pipeline.producer import AsyncProducer
    from pipeline.settings import Settings

    producer = AsyncProducer(Settings(bootstrap="127.0.0.1:1"), clients=len(clients))
    producer._clients = list(clients)
    return producer


def test_an_idle_pump_serves_a_new_batch_at_once(monkeypatch):
    from pipeline.producer import AsyncProducer

    monkeypatch.setattr(AsyncProducer, "IDLE_POLL", 3600.0)  # an idle pump would sleep an hour

    async def scenario():
        producer = producer_over(FakeClient())
        first = await producer.send_batch([("t", b"k", b"v", [])])
        assert await asyncio.wait_for(first, 5) == []
        await asyncio.sleep(0.05)  # the pump is idle now
        second = await producer.send_batch([("t", b"k2", b"v", []), ("t", b"k3", b"v", [])])
        refused = await asyncio.wait_for(second, 5)
        producer.close(0)
        return refused

    assert asyncio.run(scenario()) == []


@given(st.lists(st.sampled_from([f"member.{i}" for i in range(12)]), max_size=60), st.integers(1, 5))
def test_each_topic_is_written_through_one_client_and_the_topics_are_spread_evenly(topics, count):
    clients = [FakeClient() for _ in range(count)]

    async def scenario():
        producer = producer_over(*clients)
        batch = [(topic, str(n).encode(), b"v", []) for n, topic in enumerate(topics)]
        refused = await asyncio.wait_for(await producer.send_batch(batch), 5)
        producer.close(0)
        return refused

    assert asyncio.run(scenario()) == []
    owners = {}
    for index, client in enumerate(clients):
        for topic, _ in client.written:
            assert owners.setdefault(topic, index) == index, f"{topic} written through two clients"
    # Every record went out once, and each topic's records in the order they were given.
    for topic in set(topics):
        written = [key for topic_, key in clients[owners[topic]].written if topic_ == topic]
        assert written == [str(n).encode() for n, t in enumerate(topics) if t == topic]
    shares = [len({topic for topic, _ in client.written}) for client in clients]
    assert max(shares) - min(shares) <= 1, shares


def test_a_batch_resolves_only_once_every_client_has_answered():
    slow = FakeClient(held=True)

    async def scenario():
        producer = producer_over(FakeClient(), slow)
        batch = [("a", b"1", b"v", []), ("b", b"2", b"v", []), ("a", b"3", b"v", [])]
        future = await producer.send_batch(batch)
        await asyncio.sleep(0.05)  # the pump has served the first client's reports by now
        assert not future.done(), "resolved while the second client had not answered"
        assert slow.written == [("b", b"2")]
        slow.held = False
        refused = await asyncio.wait_for(future, 5)
        producer.close(0)
        return refused

    assert asyncio.run(scenario()) == []


def test_close_counts_what_every_client_left_undelivered():
    held = FakeClient(held=True)

    async def scenario():
        producer = producer_over(FakeClient(), held)
        await producer.send_batch([("a", b"1", b"v", []), ("b", b"2", b"v", []), ("c", b"3", b"v", [])])
        return producer.close(0)

    assert asyncio.run(scenario()) == 1  # "b" went to the held client


def test_at_least_one_client():
    from pipeline.producer import AsyncProducer
    from pipeline.settings import Settings

    with pytest.raises(ValueError, match="clients"):
        AsyncProducer(Settings(bootstrap="127.0.0.1:1"), clients=0)


def test_the_agents_producers_linger_as_configured():
    from pipeline.producer import AsyncProducer
    from pipeline.settings import Settings

    assert AsyncProducer.tuning(Settings(bootstrap="127.0.0.1:1"))["linger.ms"] == 0
    tuning = AsyncProducer.tuning(Settings(bootstrap="127.0.0.1:1", linger_ms=2.5))
    assert tuning["linger.ms"] == 2.5
    assert tuning["batch.size"] == AsyncProducer.TUNING["batch.size"]
