"""Kafka clients built from the one settings model, and the admin and counting helpers.

Every confluent-kafka client of the project is made here, so connection and security settings
are given in one place.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec

from pipeline.settings import Settings
from pipeline.topics import TopicSpec


def client_config(settings: Settings) -> dict[str, Any]:
    """The connection part of every confluent-kafka client's configuration, security included."""
    config: dict[str, Any] = {"bootstrap.servers": settings.bootstrap}
    if settings.security_protocol != "PLAINTEXT":
        config["security.protocol"] = settings.security_protocol
    if settings.security_protocol.startswith("SASL"):
        config |= {
            "sasl.mechanisms": settings.sasl_mechanism,
            "sasl.username": settings.sasl_username,
            "sasl.password": settings.sasl_password.get_secret_value(),
        }
    if settings.security_protocol.endswith("SSL") and settings.ssl_ca_file is not None:
        config["ssl.ca.location"] = str(settings.ssl_ca_file)
    return config


def faust_credentials(settings: Settings) -> Any:
    """The same connection settings for Faust's aiokafka clients (None for PLAINTEXT)."""
    import ssl

    import faust

    protocol = settings.security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = None
    if protocol.endswith("SSL"):
        context = ssl.create_default_context(
            cafile=str(settings.ssl_ca_file) if settings.ssl_ca_file else None
        )
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    return faust.SASLCredentials(
        username=settings.sasl_username,
        password=settings.sasl_password.get_secret_value(),
        mechanism=settings.sasl_mechanism,
        ssl_context=context,
    )


def make_producer(settings: Settings, **overrides: Any) -> Producer:
    """An idempotent, acks=all producer with the Java client's murmur2 partitioner.

    murmur2 matters: the Faust workers (aiokafka) partition with murmur2 too, so a key lands on
    the same partition whichever client wrote it.
    """
    config = client_config(settings) | {
        "enable.idempotence": True,
        "acks": "all",
        "compression.type": "lz4",
        "linger.ms": 5,
        "partitioner": "murmur2_random",
    }
    return Producer(config | overrides)


def make_admin(settings: Settings) -> AdminClient:
    return AdminClient(client_config(settings))


def make_consumer(settings: Settings, group_id: str, **overrides: Any) -> Consumer:
    """A consumer in group `group_id` that commits only when told, starts from the earliest
    record, and reads committed records only (exactly-once workers write in transactions)."""
    config = client_config(settings) | {
        "group.id": group_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
        "session.timeout.ms": int(settings.session_timeout_seconds * 1000),
    }
    return Consumer(config | overrides)


def reader_group(settings: Settings) -> str:
    return f"{settings.group_id}-reader"


def make_reader(settings: Settings, **overrides: Any) -> Consumer:
    """A group-less consumer for reading topics from start to end (control topics, counting).

    It never joins or commits, but librdkafka still looks its group's coordinator up, so the
    group id sits under the pipeline's own prefix, which its principals may use on a secured
    cluster.
    """
    config = client_config(settings) | {
        "group.id": reader_group(settings),
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
    }
    return Consumer(config | overrides)


def wait_for_cluster(settings: Settings, timeout: float = 60.0) -> None:
    """Block until the cluster answers a metadata request; raise TimeoutError naming it if not."""
    admin = make_admin(settings)
    deadline = time.monotonic() + timeout
    while True:
        try:
            admin.list_topics(timeout=5)
            return
        except KafkaException as exc:
            if time.monotonic() > deadline:
                raise TimeoutError(f"Kafka at {settings.bootstrap} did not answer: {exc}") from exc
            time.sleep(0.5)


class TopicsRefused(KafkaException):
    """The principal may not create (or even see) some topics; their names are in `names`."""

    def __init__(self, names: list[str]) -> None:
        super().__init__(f"not authorized to create or describe: {', '.join(names)}")
        self.names = names


def ensure_topics(settings: Settings, specs: Iterable[TopicSpec], timeout: float = 60.0) -> list[str]:
    """Create the topics that do not exist yet; returns the names created. Idempotent.

    On a secured cluster a least-privileged principal sees only the topics it may describe:
    topics it may not create are collected and raised together as `TopicsRefused` after the
    others are made, so a caller that leaves topic management to the administrator can go on.
    """
    admin = make_admin(settings)
    existing = set(admin.list_topics(timeout=timeout).topics)
    new = [
        NewTopic(s.name, s.partitions, settings.replication, config=s.config)
        for s in specs
        if s.name not in existing
    ]
    created: list[str] = []
    refused: list[str] = []
    for start in range(0, len(new), 500):
        futures = admin.create_topics(new[start : start + 500], request_timeout=timeout)
        for name, future in futures.items():
            try:
                future.result()
                created.append(name)
            except KafkaException as exc:
                reason = exc.args[0].name()
                if reason in ("TOPIC_AUTHORIZATION_FAILED", "CLUSTER_AUTHORIZATION_FAILED"):
                    refused.append(name)
                elif reason != "TOPIC_ALREADY_EXISTS":
                    raise
    _wait_for_metadata(admin, [t.topic for t in new if t.topic not in refused], timeout)
    if refused:
        raise TopicsRefused(refused)
    return created


def delete_topics(settings: Settings, names: Iterable[str], timeout: float = 60.0) -> None:
    names = list(names)
    if not names:
        return
    admin = make_admin(settings)  # must outlive its futures
    for future in admin.delete_topics(names, request_timeout=timeout).values():
        try:
            future.result()
        except KafkaException as exc:
            if exc.args[0].name() != "UNKNOWN_TOPIC_OR_PART":
                raise


def _wait_for_metadata(admin: AdminClient, names: list[str], timeout: float) -> None:
    """Wait until every topic of `names` is known with a leader for each partition: a topic the
    controller has made is not served at once, and a read before that fails (NOT_LEADER)."""
    deadline = time.monotonic() + timeout
    pending = set(names)
    while pending and time.monotonic() < deadline:
        topics = admin.list_topics(timeout=timeout).topics
        pending = {name for name in pending if not _served(topics.get(name))}
        if pending:
            time.sleep(0.2)


_TRANSIENT = frozenset({"NOT_LEADER_FOR_PARTITION", "LEADER_NOT_AVAILABLE", "UNKNOWN_TOPIC_OR_PART"})


def _transient(error: KafkaError) -> bool:
    """An error that goes away by itself while a partition's leadership settles."""
    return error.retriable() or error.name() in _TRANSIENT


def _served(topic: Any) -> bool:
    return (
        topic is not None
        and topic.error is None
        and bool(topic.partitions)
        and all(p.leader >= 0 and p.error is None for p in topic.partitions.values())
    )


def list_topics(settings: Settings, prefix: str = "") -> list[str]:
    return sorted(t for t in make_admin(settings).list_topics(timeout=30).topics if t.startswith(prefix))


def assign_from_start(
    consumer: Consumer,
    topics: Iterable[str],
    edges: dict[tuple[str, int], tuple[int, int]],
    start: dict[tuple[str, int], int] | None = None,
) -> set[tuple[str, int]]:
    """Assign every partition of `topics` from its first record (or from its offset in `start`);
    return the (topic, partition) pairs that hold records past that point, i.e. those to read
    until their end-of-partition event. `edges` are the partitions' watermarks (`watermarks`)."""
    start = start or {}
    topics = list(topics)
    metadata = consumer.list_topics(timeout=30).topics
    missing = sorted(t for t in topics if t not in metadata)
    if missing:
        raise LookupError(f"topics not found on the cluster: {', '.join(missing)}")
    assignment = [
        TopicPartition(t, p, start.get((t, p), OFFSET_BEGINNING))
        for t in topics
        for p in metadata[t].partitions
    ]
    holding = set()
    for tp in assignment:
        key = (tp.topic, tp.partition)
        low, high = edges.get(key, (0, 0))
        if high > max(low, tp.offset):
            holding.add(key)
    consumer.assign(assignment)
    return holding


def read_topics(
    settings: Settings,
    topics: list[str],
    timeout: float = 60.0,
    start: dict[tuple[str, int], int] | None = None,
) -> list[Any]:
    """Read every committed record of the given topics from the beginning (or from the offsets
    in `start`) to their current end."""
    return list(iter_topics(settings, topics, timeout, start))


def iter_topics(
    settings: Settings,
    topics: list[str],
    timeout: float = 60.0,
    start: dict[tuple[str, int], int] | None = None,
) -> Iterator[Any]:
    """`read_topics`, one record at a time (for counting without keeping them)."""
    if not topics:
        return
    consumer = make_reader(settings)
    try:
        remaining = assign_from_start(consumer, topics, watermarks(settings, topics), start)
        deadline = time.monotonic() + timeout
        for records in _to_end(consumer, remaining, {}, 10_000, lambda: time.monotonic() <= deadline):
            yield from records
        if remaining:
            raise TimeoutError(f"reading {len(remaining)} partitions did not reach their end")
    finally:
        consumer.close()


def read_partitions(
    settings: Settings,
    topic: str,
    start: dict[int, int],
    last: dict[int, int] | None = None,
    stop: Callable[[], bool] = lambda: False,
    batch: int = 10_000,
) -> Iterator[list[Any]]:
    """The committed records of some partitions of `topic`, in batches of up to `batch`: each
    partition from its offset in `start` (OFFSET_BEGINNING for its first record) until its end,
    or until its offset in `last` (inclusive) where `last` names it.

    Reading ends early, between batches, once `stop()` is true. Records come in offset order
    within a partition; a batch may mix partitions.
    """
    if not start:
        return
    behind = {(topic, p) for p in start}
    until = {(topic, p): offset for p, offset in (last or {}).items()}
    reader = make_reader(settings)
    try:
        reader.assign([TopicPartition(topic, p, offset) for p, offset in start.items()])
        yield from _to_end(reader, behind, until, batch, lambda: not stop())
    finally:
        reader.close()


def _to_end(
    reader: Consumer,
    behind: set[tuple[str, int]],
    last: dict[tuple[str, int], int],
    batch: int,
    more: Callable[[], bool],
) -> Iterator[list[Any]]:
    """Batches of an assigned reader's records until every (topic, partition) in `behind` has
    reached its end, or its offset in `last` (inclusive), or `more()` turns false between
    batches. `behind` is emptied as partitions finish, so a caller sees what was left unread;
    a partition's records after its end are left out (fetched with the batch that reached it).
    """
    while behind and more():
        # A short wait: the consumer waits it out whenever fewer than `batch` records are left,
        # which is every partition's last batch.
        records = []
        for message in reader.consume(batch, timeout=0.2):
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    raise KafkaException(error)
                behind.discard((message.topic(), message.partition()))
                continue
            key = (message.topic(), message.partition())
            if key not in behind:
                continue
            records.append(message)
            if key in last and message.offset() >= last[key]:
                behind.discard(key)
        if records:
            yield records


def watermarks(
    settings: Settings, topics: Iterable[str], timeout: float = 30.0
) -> dict[tuple[str, int], tuple[int, int]]:
    """The low and high watermark of every partition of `topics` (missing topics have none).

    Two batched requests for all partitions, whatever their number: asking partition by
    partition costs a round trip each, and there is a topic per member.
    """
    admin = make_admin(settings)  # must outlive its futures
    deadline = time.monotonic() + timeout
    metadata = admin.list_topics(timeout=timeout).topics
    partitions = [TopicPartition(t, p) for t in topics if t in metadata for p in metadata[t].partitions]
    if not partitions:
        return {}
    while True:
        try:
            edges = []
            for spec in (OffsetSpec.earliest(), OffsetSpec.latest()):
                futures = admin.list_offsets(dict.fromkeys(partitions, spec), request_timeout=timeout)
                edges.append({(tp.topic, tp.partition): f.result().offset for tp, f in futures.items()})
            low, high = edges
            return {key: (low[key], high[key]) for key in high}
        except KafkaException as exc:
            # A partition just made (or just moved) is in the metadata a moment before its
            # leader serves it.
            if not _transient(exc.args[0]) or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def count_records(settings: Settings, topics: list[str]) -> dict[str, int]:
    """Number of records in each topic, by watermark offsets (exact without transactions: each
    transaction also takes an offset per partition it wrote, for its marker)."""
    counts = dict.fromkeys(topics, 0)
    for (topic, _), (low, high) in watermarks(settings, topics).items():
        counts[topic] += high - low
    return counts


def count_committed(settings: Settings, topics: list[str], timeout: float = 300.0) -> dict[str, int]:
    """Number of committed records in each topic, by reading them (exact with transactions)."""
    counts = dict.fromkeys(topics, 0)
    for message in iter_topics(settings, topics, timeout):
        counts[message.topic()] += 1
    return counts
