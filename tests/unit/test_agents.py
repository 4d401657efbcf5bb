import asyncio

from pipeline.agents import InFlight


class Event:
    def __init__(self):
        self.acked = 0

    def ack(self):
        self.acked += 1


def test_events_are_let_go_only_after_their_writes_and_the_window_is_bounded():
    async def scenario():
        loop = asyncio.get_running_loop()
        in_flight = InFlight(limit=2)
        writes = [loop.create_future() for _ in range(4)]
        batches = [[Event(), Event()] for _ in range(4)]

        async def completion(n):
            await writes[n]

        for n in range(2):
            await in_flight.add(batches[n], completion(n))
        await asyncio.sleep(0)
        assert not any(e.acked for b in batches for e in b), "let go before its writes were acknowledged"

        writes[1].set_result(None)  # a later batch may finish first: only it is let go
        await asyncio.sleep(0.01)
        assert [e.acked for e in batches[1]] == [1, 1] and not any(e.acked for e in batches[0])

        # The window holds two: a third batch waits for the oldest, which is the back-pressure.
        adding = asyncio.ensure_future(in_flight.add(batches[2], completion(2)))
        await asyncio.sleep(0.01)
        assert not adding.done()
        writes[0].set_result(None)
        await asyncio.sleep(0.01)
        assert adding.done() and [e.acked for e in batches[0]] == [1, 1]
        await in_flight.add(batches[3], completion(3))
        for w in writes[2:]:
            w.set_result(None)
        await asyncio.sleep(0.01)
        assert all(e.acked == 1 for b in batches for e in b)

    asyncio.run(scenario())
