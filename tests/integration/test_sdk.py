"""The partner SDK against the real broker: back-pressure instead of errors, honest failures."""

from __future__ import annotations

import os

import pytest

from pipeline.kafka import count_records
from pipeline.partner.sdk import FeedProducer
from pipeline.settings import Settings
from pipeline.topics import RAW

pytestmark = pytest.mark.integration


def test_a_full_queue_waits_instead_of_failing(settings: Settings) -> None:
    topic = settings.topic(RAW)
    # A queue of ten records: without back-pressure, produce() would raise BufferError at once.
    tight = {"queue.buffering.max.messages": 10, "linger.ms": 5}
    with FeedProducer(settings.bootstrap, "cert/alerts", "cert-analysts", topic=topic, config=tight) as out:
        for n in range(2000):
            out.send(b'{"n": %d}' % n)
    summary = out.summary()
    assert (summary.sent, summary.acknowledged, summary.failed, summary.pending) == (2000, 2000, 0, 0)
    assert count_records(settings, [topic])[topic] == 2000


def test_records_the_broker_refuses_are_counted_with_their_error(settings: Settings) -> None:
    topic = settings.topic(RAW)
    # The client allows 3 MB; the broker's limit is 1 MB, so it refuses the record (random
    # bytes, so that compression cannot bring it under the limit).
    roomy = {"message.max.bytes": 3_000_000, "message.timeout.ms": 20_000}
    with FeedProducer(settings.bootstrap, "cert/alerts", "cert-analysts", topic=topic, config=roomy) as out:
        out.send(os.urandom(2_000_000))
        # Answered before the next record is sent: with both in flight on one partition,
        # librdkafka now and then reports the refused record as delivered (see the SDK's
        # docstring). This test is about the SDK's counts, not that race.
        assert out.flush().failed == 1
        out.send(b"{}")
    summary = out.summary()
    assert (summary.sent, summary.acknowledged, summary.failed) == (2, 1, 1)
    assert "MSG_SIZE_TOO_LARGE" in summary.errors[0]
    assert count_records(settings, [topic])[topic] == summary.acknowledged


def test_a_record_over_the_clients_limit_is_refused_at_send(settings: Settings) -> None:
    """At the SDK's own limit, below the broker's, no broker ever sees a record too large:
    the client refuses it, the SDK counts it failed, and the next record goes on."""
    topic = settings.topic(RAW)
    with FeedProducer(settings.bootstrap, "cert/alerts", "cert-analysts", topic=topic) as out:
        out.send(os.urandom(1_000_001))
        out.send(os.urandom(990_000))
    summary = out.summary()
    assert (summary.sent, summary.acknowledged, summary.failed, summary.pending) == (2, 1, 1, 0)
    assert summary.errors == ["MSG_SIZE_TOO_LARGE: a record of 1000001 bytes, over the client's limit"]
    assert count_records(settings, [topic])[topic] == 1
