import asyncio

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
    """Stands in for the client's queue: reports are served by `poll`, as librdkafka does."""

    def __init__(self):
        self.reports = []

    def produce(self, topic, value, key, headers=None, on_delivery=None):
        self.reports.append((on_delivery, Message(topic, key)))

    def poll(self, timeout):
        served, self.reports = self.reports, []
        for report, message in served:
            report(None, message)
        return len(served)

    def flush(self, timeout):
        return self.poll(0) and 0


def test_an_idle_pump_serves_a_new_batch_at_once(monkeypatch):
    from pipeline.producer import AsyncProducer
    from pipeline.settings import Settings

    monkeypatch.setattr(AsyncProducer, "IDLE_POLL", 3600.0)  # an idle pump would sleep an hour

    async def scenario():
        producer = AsyncProducer(Settings(bootstrap="127.0.0.1:1"))
        producer._producer = FakeClient()
        first = await producer.send_batch([("t", b"k", b"v", [])])
        assert await asyncio.wait_for(first, 5) == []
        await asyncio.sleep(0.05)  # the pump is idle now
        second = await producer.send_batch([("t", b"k2", b"v", []), ("t", b"k3", b"v", [])])
        refused = await asyncio.wait_for(second, 5)
        producer.close(0)
        return refused

    assert asyncio.run(scenario()) == []
