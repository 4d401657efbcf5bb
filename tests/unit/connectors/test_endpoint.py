"""The delivery loop of one endpoint, driven by a scripted connector (no network)."""

import asyncio
import random

from connectors.breaker import CircuitBreaker, State
from connectors.core import DELIVERED, Outcome, Result
from connectors.endpoint import Endpoint, Limits, Pending
from connectors.retry import RetryPolicy
from tests.unit.connectors.deliveries import deliveries

FAST = RetryPolicy(base_seconds=0.001, cap_seconds=0.005, max_attempts=4, max_elapsed_seconds=5)


class Scripted:
    """Answers each send with the next scripted outcome (then DELIVERED); records what it saw."""

    name = "scripted"
    tlp_ceiling = "RED"

    def __init__(self, script=(), hang=False):
        self.script = list(script)
        self.sent = []
        self.hang = hang
        self.opened = self.closed = False

    async def open(self):
        self.opened = True

    async def send_batch(self, batch):
        if self.hang:
            await asyncio.sleep(3600)
        self.sent.append([d.key for d in batch])
        step = self.script.pop(0) if self.script else DELIVERED
        if isinstance(step, Exception):
            raise step
        return [step] * len(batch)

    async def close(self):
        self.closed = True

    def health(self):
        return {}


def run(connector, items, ceiling="RED", public=False, policy=FAST, timeout=1.0, breaker=None, wait=2.0):
    done = []

    async def main():
        endpoint = Endpoint(
            "m1",
            "t1",
            connector,
            ceiling=ceiling,
            public=public,
            limits=Limits(batch_size=10, linger=0.001, send_timeout=timeout),
            policy=policy,
            breaker=breaker or CircuitBreaker(threshold=100, cooldown=0.01),
            on_done=lambda ep, p, r: done.append((p.delivery.key, r, p.attempts)),
            rng=random.Random(7),
        ).start()
        for delivery in items:
            endpoint.put(Pending(delivery))
        deadline = asyncio.get_running_loop().time() + wait
        while len(done) < len(items) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.005)
        left = endpoint.unfinished()
        await endpoint.close()
        return left

    left = asyncio.run(main())
    return done, left


def test_delivers_in_batches_in_order():
    connector = Scripted()
    items = deliveries(25)
    done, left = run(connector, items)
    assert [k for k, _, _ in done] == [d.key for d in items]
    assert all(r.outcome is Outcome.DELIVERED and n == 1 for _, r, n in done)
    assert [len(b) for b in connector.sent] == [10, 10, 5]
    assert connector.opened and connector.closed and not left


def test_retries_then_delivers():
    connector = Scripted([Result(Outcome.RETRY, "HTTP 503"), Result(Outcome.RETRY, "HTTP 503")])
    done, _ = run(connector, deliveries(3))
    assert [(r.outcome, n) for _, r, n in done] == [(Outcome.DELIVERED, 3)] * 3


def test_gives_up_with_the_last_error_after_max_attempts():
    connector = Scripted([Result(Outcome.RETRY, f"HTTP 50{i}") for i in range(10)])
    done, _ = run(connector, deliveries(2))
    assert len(connector.sent) == 4
    for _, result, attempts in done:
        assert result.outcome is Outcome.FAILED
        assert attempts == 4
        assert result.detail == "gave up after 4 attempt(s): HTTP 503"


def test_a_permanent_failure_is_not_retried():
    connector = Scripted([Result(Outcome.FAILED, "HTTP 400")])
    done, _ = run(connector, deliveries(2))
    assert len(connector.sent) == 1
    assert [(r.detail, n) for _, r, n in done] == [("HTTP 400", 1)] * 2


def test_tlp_above_the_ceiling_never_reaches_the_connector():
    connector = Scripted()
    items = deliveries(2, tlp="AMBER") + deliveries(2, tlp="GREEN", start=2)
    done, _ = run(connector, items, ceiling="GREEN")
    refused = [r.detail for _, r, _ in done if r.outcome is Outcome.FAILED]
    assert refused == ["tlp AMBER above the target's ceiling GREEN"] * 2
    assert [k for batch in connector.sent for k in batch] == [d.key for d in items[2:]]


def test_a_public_target_takes_clear_only():
    connector = Scripted()
    items = deliveries(1, tlp="GREEN") + deliveries(1, tlp="CLEAR", start=1)
    done, _ = run(connector, items, public=True)
    outcomes = {k: r for k, r, _ in done}
    assert outcomes[items[0].key].detail == "tlp GREEN may not go to a public target"
    assert outcomes[items[1].key].outcome is Outcome.DELIVERED


def test_a_hanging_send_times_out_as_retriable_and_is_given_up():
    policy = RetryPolicy(base_seconds=0.001, cap_seconds=0.001, max_attempts=2, max_elapsed_seconds=5)
    done, _ = run(Scripted(hang=True), deliveries(1), policy=policy, timeout=0.05)
    assert done[0][1].detail == "gave up after 2 attempt(s): no answer within 0.05s"


def test_a_connector_that_raises_does_not_stop_the_endpoint():
    connector = Scripted([RuntimeError("bug")])
    done, _ = run(connector, deliveries(1))
    assert done[0][1].outcome is Outcome.DELIVERED and done[0][2] == 2


def test_the_breaker_opens_on_failures_and_holds_sends_back():
    breaker = CircuitBreaker(threshold=2, cooldown=0.2, max_cooldown=1)
    connector = Scripted([Result(Outcome.RETRY, "down")] * 2)
    done, _ = run(connector, deliveries(1), breaker=breaker)
    assert done[0][1].outcome is Outcome.DELIVERED
    assert breaker.opened == 1 and breaker.state is State.CLOSED


def test_closing_leaves_what_is_unfinished_unfinished():
    policy = RetryPolicy(base_seconds=10, cap_seconds=10, max_attempts=5, max_elapsed_seconds=100)
    connector = Scripted([Result(Outcome.RETRY, "down")])
    items = deliveries(12)
    done, left = run(connector, items, policy=policy, wait=0.3)
    assert done == []
    assert [p.delivery.key for p in left] == [d.key for d in items]
