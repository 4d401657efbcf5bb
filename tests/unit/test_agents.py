import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.agents import InFlight


class Event:
    def __init__(self):
        self.acked = 0

    def ack(self):
        self.acked += 1


async def held_up_until(adding, *answers):
    """`adding` (an `InFlight.add`) holds the agent up until `answers` (writes) are answered,
    and then goes on."""
    task = asyncio.ensure_future(adding)
    await asyncio.sleep(0.01)
    assert not task.done()
    for answer in answers:
        answer.set_result(None)
    await asyncio.wait_for(task, timeout=1)


def test_events_are_let_go_only_after_their_writes_in_order_and_the_window_is_bounded():
    async def scenario():
        loop = asyncio.get_running_loop()
        in_flight = InFlight(limit=4)  # events: two batches of two
        writes = [loop.create_future() for _ in range(4)]
        batches = [[Event(), Event()] for _ in range(4)]

        async def completion(n):
            await writes[n]

        for n in range(2):
            await in_flight.add(batches[n], completion(n))
        await asyncio.sleep(0)
        assert not any(e.acked for b in batches for e in b), "let go before its writes were acknowledged"

        # A later batch's writes may finish first: it is still not let go before the earlier one,
        # or Faust could commit past the earlier batch's offsets.
        writes[1].set_result(None)
        await asyncio.sleep(0.01)
        assert not any(e.acked for b in batches[:2] for e in b)

        # The window holds four events: a third batch waits for the oldest, which is the
        # back-pressure.
        adding = asyncio.ensure_future(in_flight.add(batches[2], completion(2)))
        await asyncio.sleep(0.01)
        assert not adding.done()
        writes[0].set_result(None)
        await asyncio.sleep(0.01)
        assert adding.done() and all(e.acked == 1 for b in batches[:2] for e in b)
        await in_flight.add(batches[3], completion(3))
        for w in writes[2:]:
            w.set_result(None)
        await asyncio.sleep(0.01)
        assert all(e.acked == 1 for b in batches for e in b)

    asyncio.run(scenario())


def test_the_window_is_counted_in_events_so_small_batches_do_not_fill_it():
    async def scenario():
        loop = asyncio.get_running_loop()
        in_flight = InFlight(limit=10)
        writes = [loop.create_future() for _ in range(11)]

        # Ten batches of one event each, none acknowledged: all fit, the agent is not held up.
        for n in range(10):
            await asyncio.wait_for(in_flight.add([Event()], writes[n]), timeout=1)

        # One more event is over the bound: the agent waits for the oldest batch, and only it.
        await held_up_until(in_flight.add([Event()], writes[10]), writes[0])

        # A batch larger than the whole bound still goes through, once the earlier ones are let go.
        big = [Event() for _ in range(25)]
        await held_up_until(in_flight.add(big, asyncio.sleep(0)), *writes[1:])
        assert all(event.acked == 1 for event in big)

    asyncio.run(scenario())


def test_two_batches_that_fill_the_window_in_events_hold_up_a_third_of_one_event():
    async def scenario():
        loop = asyncio.get_running_loop()
        in_flight = InFlight(limit=10)
        writes = [loop.create_future() for _ in range(3)]
        for n in range(2):
            await asyncio.wait_for(in_flight.add([Event() for _ in range(5)], writes[n]), timeout=1)
        await held_up_until(in_flight.add([Event()], writes[2]), writes[0])
        writes[1].set_result(None)
        writes[2].set_result(None)

    asyncio.run(scenario())


class Recorded:
    """An event that notes, in a shared list, the order in which it was let go."""

    def __init__(self, order: list[int], n: int):
        self.order, self.n = order, n

    def ack(self):
        self.order.append(self.n)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 8).flatmap(lambda n: st.permutations(range(n))), st.integers(1, 4))
def test_batches_are_let_go_in_the_order_they_were_added_whatever_order_their_writes_finish(
    finishing: list[int], limit: int
):
    async def scenario() -> list[int]:
        loop = asyncio.get_running_loop()
        in_flight = InFlight(limit=limit)
        writes = [loop.create_future() for _ in finishing]
        order: list[int] = []
        adding = []
        for n, write in enumerate(writes):
            adding.append(asyncio.ensure_future(in_flight.add([Recorded(order, n)], write)))
            await asyncio.sleep(0)
        for n in finishing:
            writes[n].set_result(None)
            await asyncio.sleep(0)
        await asyncio.gather(*adding)
        for _ in range(4 * len(writes)):
            await asyncio.sleep(0)
        return order

    assert asyncio.run(scenario()) == sorted(finishing)
