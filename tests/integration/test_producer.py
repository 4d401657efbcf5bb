"""The agents' producer against the real broker: topics spread over several clients."""

from __future__ import annotations

import asyncio

from pipeline.kafka import ensure_topics, read_topics
from pipeline.producer import AsyncProducer
from pipeline.topics import TopicSpec


def test_records_spread_over_clients_all_land_in_order(settings):
    topics = [settings.topic(f"cwn.deliver.m{i}") for i in range(7)]
    ensure_topics(settings, [TopicSpec(topic, 1) for topic in topics])
    producer = AsyncProducer(settings, clients=3)
    batches = [[(topics[(b + n) % 7], f"{b}-{n}".encode(), b"v", []) for n in range(40)] for b in range(5)]

    async def send_all():
        futures = [await producer.send_batch(batch) for batch in batches]
        return await asyncio.wait_for(asyncio.gather(*futures), 60)

    try:
        assert asyncio.run(send_all()) == [[]] * len(batches)
    finally:
        assert producer.close(30) == 0
    assert len({id(produce.__self__) for produce in producer._produce_to.values()}) == 3
    sent = [record for batch in batches for record in batch]
    written = read_topics(settings, topics)
    assert len(written) == len(sent)
    for topic in topics:
        keys = [m.key() for m in written if m.topic() == topic]
        assert keys == [key for t, key, _, _ in sent if t == topic], f"{topic}: records out of order"
