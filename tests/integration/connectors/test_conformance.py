"""The one suite every delivery connector passes, each against a real server.

Cases: open and close, a batch delivered exactly once, retriable failures retried and then
delivered, permanent failures not retried, the TLP ceiling enforced before any send, nothing
lost on close, and no secret in any log line.
"""

from __future__ import annotations

import asyncio
import logging
import random

import pytest

from connectors.breaker import CircuitBreaker
from connectors.core import Outcome
from connectors.endpoint import Endpoint, Limits, Pending
from connectors.retry import RetryPolicy
from tests.integration.connectors.harnesses import HARNESSES, run_with
from tests.unit.connectors.deliveries import deliveries


async def send(connector, batch):
    return await asyncio.wait_for(connector.send_batch(batch), 30)


kinds = pytest.mark.parametrize("harness_class", HARNESSES, ids=[h.name for h in HARNESSES])
fatal_kinds = pytest.mark.parametrize(
    "harness_class", [h for h in HARNESSES if h.has_fatal], ids=[h.name for h in HARNESSES if h.has_fatal]
)


@kinds
def test_a_batch_is_delivered_exactly_once(harness_class, tls, tmp_path):
    async def body(harness):
        connector = harness.connector()
        await connector.open()
        batch = deliveries(10)
        results = await send(connector, batch)
        assert [r.outcome for r in results] == [Outcome.DELIVERED] * 10
        assert await harness.received() == [d.key for d in batch]
        assert connector.health()["connector"] == harness.name
        await connector.close()

    run_with(harness_class, tls, tmp_path, body)


@kinds
def test_retriable_failures_are_retried_then_delivered(harness_class, tls, tmp_path):
    async def body(harness):
        connector = harness.connector()
        await connector.open()
        await harness.fail()
        batch = deliveries(3)
        results = await send(connector, batch)
        assert {r.outcome for r in results} == {Outcome.RETRY}, results
        assert all(r.detail for r in results)
        await harness.recover()
        results = await send(connector, batch)
        assert [r.outcome for r in results] == [Outcome.DELIVERED] * 3, results
        assert await harness.received() == [d.key for d in batch]
        await connector.close()

    run_with(harness_class, tls, tmp_path, body)


@fatal_kinds
def test_permanent_failures_fail_at_once(harness_class, tls, tmp_path):
    async def body(harness):
        connector = harness.connector()
        await connector.open()
        await harness.fatal()
        results = await send(connector, deliveries(2))
        assert {r.outcome for r in results} == {Outcome.FAILED}, results
        assert await harness.received() == []
        await connector.close()

    run_with(harness_class, tls, tmp_path, body)


@kinds
def test_the_endpoint_loop_enforces_the_ceiling_and_survives_an_outage(harness_class, tls, tmp_path):
    """Through the shared delivery loop: AMBER never reaches a GREEN target; an outage is
    retried until the server is back; every delivery gets exactly one outcome."""

    async def body(harness):
        done = []
        endpoint = Endpoint(
            "m1",
            "t1",
            harness.connector(),
            ceiling="GREEN",
            limits=Limits(batch_size=5, linger=0.01, send_timeout=5),
            policy=RetryPolicy(base_seconds=0.05, cap_seconds=0.2, max_attempts=50, max_elapsed_seconds=30),
            breaker=CircuitBreaker(threshold=3, cooldown=0.1, max_cooldown=0.5),
            on_done=lambda ep, p, r: done.append((p.delivery.key, r)),
            rng=random.Random(1),
        ).start()
        await harness.fail()
        green, amber = deliveries(8, tlp="GREEN"), deliveries(2, tlp="AMBER", start=8)
        for delivery in [*green, *amber]:
            endpoint.put(Pending(delivery))
        await asyncio.sleep(0.5)
        await harness.recover()
        for _ in range(600):
            if len(done) == 10:
                break
            await asyncio.sleep(0.05)
        await endpoint.close()
        outcomes = dict(done)
        assert len(done) == 10
        assert {outcomes[d.key].outcome for d in green} == {Outcome.DELIVERED}
        assert {outcomes[d.key].detail for d in amber} == {"tlp AMBER above the target's ceiling GREEN"}
        assert sorted(await harness.received()) == sorted(d.key for d in green)

    run_with(harness_class, tls, tmp_path, body)


@kinds
def test_close_loses_nothing_already_acknowledged(harness_class, tls, tmp_path):
    async def body(harness):
        connector = harness.connector()
        await connector.open()
        batch = deliveries(4)
        await send(connector, batch[:2])
        await send(connector, batch[2:])
        await connector.close()
        assert await harness.received() == [d.key for d in batch]

    run_with(harness_class, tls, tmp_path, body)


@kinds
def test_no_secret_in_any_log_line(harness_class, tls, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)

    async def body(harness):
        connector = harness.connector()
        await connector.open()
        await send(connector, deliveries(2))
        await harness.fail()
        await send(connector, deliveries(2, start=2))
        await harness.recover()
        shown = [repr(connector), str(connector.health()), repr(getattr(connector, "_relay", ""))]
        await connector.close()
        return shown

    shown = run_with(harness_class, tls, tmp_path, body)
    text = "\n".join([r.getMessage() for r in caplog.records] + [str(r.args) for r in caplog.records] + shown)
    for secret in harness_class.secrets:
        assert secret not in text
