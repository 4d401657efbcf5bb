import asyncio
import threading

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
        for _ in range(3):
            acks.expect()
        # Reports arrive on the producer's thread, some before the batch is sealed.
        reporter = threading.Thread(target=lambda: [acks.report(None, Message("t", b"k")) for _ in range(2)])
        reporter.start()
        reporter.join()
        future = acks.seal()
        await asyncio.sleep(0.01)
        assert not future.done(), "resolved with a record still unanswered"
        threading.Thread(target=acks.report, args=("boom", Message("t", b"k3"))).start()
        return await asyncio.wait_for(future, 5)

    refused = asyncio.run(scenario())
    assert [(r.topic, r.key, r.error) for r in refused] == [("t", b"k3", "boom")]


def test_an_empty_batch_resolves_at_once():
    async def scenario():
        return await asyncio.wait_for(_Acks(asyncio.get_running_loop()).seal(), 5)

    assert asyncio.run(scenario()) == []
