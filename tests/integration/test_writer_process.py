"""The member-topic writer process against the real broker."""

from __future__ import annotations

import asyncio
import io
import os
import signal
from pathlib import Path

from pipeline.bench.measure import process_tree
from pipeline.broker import LocalBroker
from pipeline.demo.run import free_ports
from pipeline.kafka import ensure_topics, make_producer, read_topics
from pipeline.topics import TopicSpec
from pipeline.writer_process import ChildSender, Connection, ProcessProducer, frame

#: Longer than aiokafka's default request timeout (40 s), after which a non-idempotent
#: producer gives a batch up.
_OUTAGE_SECONDS = 45


def writer_pids() -> list[int]:
    """This test process's writer children (the session's broker is a child too)."""
    return [pid for pid in process_tree(os.getpid())[1:] if b"pipeline.writer_process" in cmdline(pid)]


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def test_batches_land_on_their_topics_in_order_with_keys_and_headers(settings):
    members = [settings.topic(f"cwn.deliver.m{i}") for i in range(6)]
    audit = settings.topic("cwn.audit")
    ensure_topics(settings, [TopicSpec(topic, 1) for topic in members] + [TopicSpec(audit, 3)])
    batches = [
        [
            (members[(b + n) % 6], f"{b}-{n}".encode(), f"value {b}-{n}".encode(), [("cwn.rule", b"r")])
            for n in range(60)
        ]
        + [(audit, f"fp{b}-{n}".encode(), b"audit", []) for n in range(20)]
        for b in range(5)
    ]
    producer = ProcessProducer(settings)

    async def send_all():
        futures = [await producer.send_batch(batch) for batch in batches]
        return await asyncio.wait_for(asyncio.gather(*futures), 120)

    try:
        assert asyncio.run(send_all()) == [[]] * len(batches)
    finally:
        assert producer.close(30) == 0
    assert writer_pids() == [], "the writer process outlived its close"

    sent = [record for batch in batches for record in batch]
    written = read_topics(settings, [*members, audit])
    assert len(written) == len(sent)
    for topic in members:
        got = [(m.key(), m.value(), m.headers()) for m in written if m.topic() == topic]
        assert got == [(k, v, h) for t, k, v, h in sent if t == topic], f"{topic}: records out of order"
    # Keyed records of a topic with several partitions are spread by the key, as the Java client does.
    assert {m.partition() for m in written if m.topic() == audit} == {0, 1, 2}


def test_a_killed_writer_process_refuses_every_later_batch(settings):
    topic = settings.topic("cwn.deliver.m1")
    ensure_topics(settings, [TopicSpec(topic, 1)])
    producer = ProcessProducer(settings)

    async def run():
        assert await asyncio.wait_for(await producer.send_batch([(topic, b"k0", b"v", [])]), 60) == []
        (child,) = writer_pids()
        os.kill(child, signal.SIGKILL)
        return await asyncio.wait_for(await producer.send_batch([(topic, b"k1", b"v", [])]), 60)

    try:
        refused = asyncio.run(run())
    finally:
        producer.close(10)
    assert [(r.topic, r.key) for r in refused] == [(topic, b"k1")]
    assert "writer process ended" in str(refused[0].error)
    assert [m.key() for m in read_topics(settings, [topic])] == [b"k0"]


def test_topics_written_stay_known_when_a_new_topic_appears(settings):
    """A member topic made while the writer runs (a member joins) must not push the topics it
    already writes out of the producer's metadata, or their next batches wait for ever."""
    from aiokafka import AIOKafkaProducer

    old, new = settings.topic("cwn.deliver.old"), settings.topic("cwn.deliver.new")
    ensure_topics(settings, [TopicSpec(old, 1)])

    async def run():
        producer = AIOKafkaProducer(**Connection.of(settings).aiokafka(), acks="all", enable_idempotence=True)
        await producer.start()
        try:
            writer = ChildSender(producer, io.BytesIO())
            await writer.send(0, [(old, b"k", b"v", [])])
            ensure_topics(settings, [TopicSpec(new, 1)])
            await writer.send(1, [(new, b"k", b"v", [])])
            await writer.drain()
            await producer.client.force_metadata_update()
            return producer.client.cluster.partitions_for_topic(old)
        finally:
            await producer.stop()

    assert asyncio.run(run()) == {0}, "the older topic fell out of the metadata"


def test_the_topics_of_a_batch_are_learnt_together(settings):
    """A worker's first batch reaches hundreds of member topics it has not written yet: one
    metadata request learns them all, not one request each, in turn."""
    from aiokafka import AIOKafkaProducer

    topics = [settings.topic(f"cwn.deliver.m{i}") for i in range(200)]
    ensure_topics(settings, [TopicSpec(topic, 1) for topic in topics])
    # Topics just made answer "not leader" for a moment, and each such answer asks for metadata
    # again: write to each first, as members' topics are long made when a worker starts.
    ready = make_producer(settings)
    for topic in topics:
        ready.produce(topic, b"made")
    assert ready.flush(60) == 0

    async def run():
        producer = AIOKafkaProducer(**Connection.of(settings).aiokafka(), acks="all", enable_idempotence=True)
        await producer.start()
        client, updates = producer.client, []
        force = client.force_metadata_update
        client.force_metadata_update = lambda: updates.append(1) or force()
        try:
            answer = io.BytesIO()
            writer = ChildSender(producer, answer)
            await writer.send(0, [(topic, b"k", b"v", []) for topic in topics])
            await writer.drain()
            return len(updates), answer.getvalue()
        finally:
            await producer.stop()

    updates, answer = asyncio.run(run())
    assert updates <= 2, f"{updates} metadata updates for one batch"
    assert answer == frame((0, [])), "every record acknowledged"


def test_a_batch_waits_out_a_broker_outage_longer_than_a_request_timeout(tmp_path, settings):
    """The only broker goes down with a batch unsent and stays down past aiokafka's request
    timeout (40 s): the idempotent producer keeps the batch and retries, and once the broker is
    back every record is written once and acknowledged, none refused."""
    broker = LocalBroker(home=tmp_path / "kafka", port=free_ports(2))
    broker.up()
    try:
        settings = settings.model_copy(update={"bootstrap": broker.bootstrap})
        topics = [settings.topic(f"cwn.deliver.m{i}") for i in range(3)]
        ensure_topics(settings, [TopicSpec(topic, 1) for topic in topics])
        producer = ProcessProducer(settings, warm=(settings.topic("cwn.deliver."),))

        async def run() -> tuple[list, list]:
            first = await asyncio.wait_for(await producer.send_batch([(topics[0], b"k0", b"v", [])]), 60)
            broker.down()
            batch = [(topic, f"k{n}".encode(), b"v", []) for n, topic in enumerate(topics * 3, start=1)]
            answer = await producer.send_batch(batch)
            await asyncio.sleep(_OUTAGE_SECONDS)
            assert not answer.done(), "answered while the only broker was down"
            await asyncio.get_running_loop().run_in_executor(None, broker.up)
            return first, await asyncio.wait_for(answer, 180)

        try:
            first, later = asyncio.run(run())
        finally:
            producer.close(30)
        assert first == [] and later == []
        written = read_topics(settings, topics)
        assert sorted(m.key() for m in written) == sorted([b"k0"] + [f"k{n}".encode() for n in range(1, 10)])
    finally:
        broker.down()
