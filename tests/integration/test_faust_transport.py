"""The bulk changelog restore into a real Faust RocksDB store, from a real topic."""

from pathlib import Path

import faust
import pytest
from faust.types import TP

from pipeline.faust_transport import restore_in_bulk
from pipeline.kafka import ensure_topics, make_producer
from pipeline.settings import Settings
from pipeline.topics import TopicSpec

pytestmark = pytest.mark.integration


def store_for(settings: Settings, folder: Path) -> object:
    app = faust.App(
        settings.group_id, broker=f"kafka://{settings.bootstrap}", store="rocksdb://", datadir=str(folder)
    )
    return app.Table("dedupe", partitions=2, key_type=bytes, value_type=bytes).data


def test_restore_in_bulk_applies_each_span_with_its_offsets(settings: Settings, tmp_path: Path) -> None:
    topic = settings.topic("bulk-changelog")
    ensure_topics(settings, [TopicSpec(topic, 2)])
    producer = make_producer(settings)
    for n in range(25_000):  # several read batches: puts, then overwrites and tombstones
        producer.produce(topic, f"v{n}".encode(), f"k{n}".encode(), partition=0)
    for n in range(0, 25_000, 5):
        producer.produce(topic, None if n % 2 else f"w{n}".encode(), f"k{n}".encode(), partition=0)
    for n in range(100):
        producer.produce(topic, f"v{n}".encode(), f"j{n}".encode(), partition=1)
    producer.flush(30)
    last0 = 25_000 + 5_000 - 1

    store = store_for(settings, tmp_path)
    batches: list[int] = []
    applied = restore_in_bulk(
        settings, store, topic, {0: (0, last0), 1: (0, 49)}, lambda: False, batches.append
    )

    assert applied == sum(batches) == last0 + 1 + 50 and len(batches) > 1
    assert store.persisted_offset(TP(topic, 0)) == last0
    assert store.persisted_offset(TP(topic, 1)) == 49
    db0, db1 = store._db_for_partition(0), store._db_for_partition(1)
    for n in range(25_000):
        want = (None if n % 2 else f"w{n}".encode()) if n % 5 == 0 else f"v{n}".encode()
        assert db0.get(f"k{n}".encode()) == want, n
    assert [db1.get(f"j{n}".encode()) for n in (0, 49, 50)] == [b"v0", b"v49", None]

    # Told to stop at once, it writes nothing and leaves the offsets where they were.
    again = store_for(settings, tmp_path / "other")
    assert restore_in_bulk(settings, again, topic, {0: (0, last0)}, lambda: True) == 0
    assert again.persisted_offset(TP(topic, 0)) is None
