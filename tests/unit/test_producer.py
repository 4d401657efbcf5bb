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
