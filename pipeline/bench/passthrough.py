"""Byte pass-through loops: the baselines the pipeline is measured against.

Each one reads a topic from its start with a consumer group, writes every record unchanged to
another topic, waits for the acknowledgements of a batch and then commits it: the same
at-least-once shape as the pipeline's stages, without any work in between. The fan-out loop
writes each record to many topics instead, as routing does to member topics.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from confluent_kafka import Consumer, KafkaException, Message, Producer

from pipeline.kafka import client_config, make_producer
from pipeline.settings import Settings

BATCH = 500


def confluent_passthrough(settings: Settings, source: str, target: str, count: int, group: str) -> None:
    """Forward `count` records from `source` to `target` with confluent-kafka."""
    confluent_fanout(settings, source, [target], count, count, group)


def confluent_fanout(
    settings: Settings, source: str, targets: Sequence[str], count: int, writes: int, group: str
) -> None:
    """Forward `count` records from `source`, `writes` writes in all spread evenly over the
    records, each write to the next of `targets` in turn, with confluent-kafka.

    With one target and as many writes as records this is the plain pass-through; with the
    member topics and the pipeline's deliveries it is the same client doing routing's writes
    and nothing else.
    """
    consumer = Consumer(
        client_config(settings)
        | {"group.id": group, "enable.auto.commit": False, "auto.offset.reset": "earliest"}
    )
    producer = make_producer(settings, **{"linger.ms": 5, "batch.size": 512 * 1024})
    consumer.subscribe([source])
    forwarded = written = 0
    try:
        while forwarded < count:
            messages = consumer.consume(BATCH, timeout=1.0)
            for message in messages:
                if message.error():
                    raise KafkaException(message.error())
                forwarded += 1
                copies = writes * forwarded // count - written
                for n in range(written, written + copies):
                    _produce(producer, targets[n % len(targets)], message)
                written += copies
            if messages:
                if producer.flush(30):
                    raise RuntimeError("pass-through writes were not acknowledged")
                consumer.commit(asynchronous=True)
    finally:
        consumer.close()


def _produce(producer: Producer, topic: str, message: Message) -> None:
    while True:
        try:
            producer.produce(topic, message.value(), message.key(), headers=message.headers())
            return
        except BufferError:
            producer.poll(0.01)


async def _aiokafka_passthrough(settings: Settings, source: str, target: str, count: int, group: str) -> None:
    consumer = AIOKafkaConsumer(
        source,
        bootstrap_servers=settings.bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap,
        acks="all",
        enable_idempotence=True,
        compression_type="lz4",
        linger_ms=5,
        max_batch_size=256 * 1024,
    )
    await consumer.start()
    await producer.start()
    forwarded = 0
    try:
        while forwarded < count:
            batches = await consumer.getmany(timeout_ms=1000, max_records=BATCH)
            acks = [
                await producer.send(target, m.value, key=m.key, headers=list(m.headers))
                for records in batches.values()
                for m in records
            ]
            if acks:
                await asyncio.gather(*acks)
                await consumer.commit()
                forwarded += len(acks)
    finally:
        await consumer.stop()
        await producer.stop()


def aiokafka_passthrough(settings: Settings, source: str, target: str, count: int, group: str) -> None:
    """Forward `count` records from `source` to `target` with aiokafka (Faust's client)."""
    asyncio.run(_aiokafka_passthrough(settings, source, target, count, group))


def faust_app(bootstrap: str, source: str, target: str, group: str, data_dir: str) -> Any:
    """A Faust app with one agent forwarding each record's bytes: the framework's own cost."""
    import faust

    app = faust.App(
        group,
        broker=f"kafka://{bootstrap}",
        store="memory://",
        datadir=data_dir,
        key_serializer="raw",
        value_serializer="raw",
        web_enabled=False,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        producer_linger_ms=5,
        producer_max_batch_size=256 * 1024,
        processing_guarantee="at_least_once",
    )
    inbound = app.topic(source, key_type=bytes, value_type=bytes)
    outbound = app.topic(target, key_type=bytes, value_type=bytes)

    @app.agent(inbound, name="forward")
    async def forward(stream: Any) -> None:
        async for key, value in stream.items():
            await outbound.send(key=key, value=value)

    return app


def main(argv: list[str]) -> None:
    """`python -m pipeline.bench.passthrough BOOTSTRAP SOURCE TARGET GROUP DATA_DIR`: run the
    Faust pass-through until SIGTERM."""
    import faust

    app = faust_app(*argv)
    faust.Worker(app, loglevel="warning", quiet=True, redirect_stdouts=False).execute_from_commandline()


if __name__ == "__main__":
    main(sys.argv[1:])
