"""Wires the Faust app: topics, the dedup table and the two agents. No logic lives here."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Iterable, Sequence
from typing import Any

import faust
from faust.types import TP

from pipeline import agents, diagnostics, faust_transport
from pipeline.control import DirectoryView
from pipeline.dedupe import expired
from pipeline.kafka import faust_credentials
from pipeline.metrics import Metrics
from pipeline.process import settle_heap
from pipeline.producer import BatchWriter
from pipeline.settings import Settings
from pipeline.table_sweep import TableSweep
from pipeline.topics import NORMALISED, RAW, producer_of_topic


def create_app(
    settings: Settings,
    metrics: Metrics,
    directory: DirectoryView,
    producers: tuple[BatchWriter, BatchWriter],
    partner_topics: Sequence[str] = (),
) -> faust.App:
    """Build the Faust application for one worker process.

    Faust's own producer writes only the dedup table's changelog; the agents write through
    `producers` (see `pipeline.producer` for why), one each: the normalise agent's small
    batches must not queue on one connection behind the dispatch agent's fan-out to every
    member topic.

    `partner_topics` are the producers' own raw topics found at start (`cwn.alerts.raw.<producer>`);
    a second normalise agent reads them and takes the producer from the topic, not the header.
    Faust cannot subscribe by pattern, so a producer's topic made later is read after the next
    (rolling) restart.
    """
    app = faust_transport.App(
        settings.group_id,
        settings=settings,
        on_restored=metrics.dedup_restored.inc,
        broker=f"kafka://{settings.bootstrap}",
        broker_credentials=faust_credentials(settings),
        store="rocksdb://" if settings.store == "rocksdb" else "memory://",
        datadir=str(settings.data_dir),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication,
        topic_disable_leader=True,
        key_serializer="raw",
        value_serializer="raw",
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=1.0,
        broker_session_timeout=settings.session_timeout_seconds,
        broker_heartbeat_interval=min(3.0, settings.session_timeout_seconds / 3),
        # Faust's own producer writes only the tables' changelogs, which no alert waits for
        # (`CWN_LINGER_MS` is the stages' producers'): fuller requests cost the broker less.
        producer_linger_ms=5,
        producer_max_batch_size=256 * 1024,
        producer_acks=-1,
        producer_request_timeout=30.0,
        stream_buffer_maxsize=max(8192, settings.batch_size * 4),
        processing_guarantee="at_least_once",
    )

    def topic(name: str) -> Any:
        return app.topic(settings.topic(name), key_type=bytes, value_type=bytes, internal=False)

    dedup_table = app.Table(
        "dedupe", partitions=settings.partitions, key_type=bytes, value_type=bytes, default=None
    )

    # Table writes queue changelog records in Faust's producer buffer; past `max_messages` Faust
    # makes every incoming message wait for it to drain, one 0.1 s tick at a time. A batch of
    # table writes is normal here, so the buffer may hold several batches.
    app.producer.buffer.max_messages = settings.batch_size * 20

    @app.task
    async def install_diagnostics() -> None:
        diagnostics.install(asyncio.get_running_loop(), app)

    @app.task
    async def start_writers() -> None:
        # While Faust recovers and the group forms: the routing stage's writer process learns
        # the member topics meanwhile, instead of holding up the first batch.
        for producer in producers:
            await producer.start()

    was_ready = [False]

    @app.timer(0.5)
    async def report_readiness() -> None:
        recovered = app.tables.recovery.completed.is_set() and not getattr(app, "in_recovery", False)
        ready = recovered and directory.wait_ready(0)
        if ready and not was_ready[0]:
            settle_heap()  # what start-up and recovery built stays out of every later collection
        was_ready[0] = ready
        metrics.ready.set(1 if ready else 0)

    @app.timer(15.0)
    async def report_dedup_size() -> None:
        # Faust counts a RocksDB table by walking every key (about 0.6 s per million here), so
        # the count runs off the event loop instead of stalling every agent while it lasts.
        try:
            keys = await asyncio.get_running_loop().run_in_executor(None, len, dedup_table)
        except RuntimeError:  # a rebalance changed the partitions mid-count: the next tick counts
            return
        metrics.dedup_keys.set(keys)

    normalise_ctx = agents.StageContext(settings, metrics, directory, producers[0].send_batch)
    dispatch_ctx = agents.StageContext(settings, metrics, directory, producers[1].send_batch)
    app.agent(topic(RAW), name="normalise")(agents.normalise_agent(normalise_ctx))
    if partner_topics:
        partners = app.topic(*partner_topics, key_type=bytes, value_type=bytes, internal=False)
        partners_ctx = agents.StageContext(settings, metrics, directory, producers[0].send_batch)
        writer_of = functools.partial(producer_of_topic, settings)
        app.agent(partners, name="normalise-partners")(agents.normalise_agent(partners_ctx, writer_of))
    app.agent(topic(NORMALISED), name="dispatch")(
        agents.dispatch_agent(dispatch_ctx, dedup_table, dedup_sweep(app, settings, dedup_table))
    )
    return app


def dedup_sweep(app: faust.App, settings: Settings, table: Any) -> TableSweep:
    """The dedup table's expiry: windows whose last sighting is more than two windows old."""
    window_us = settings.dedup_window_seconds * 1_000_000
    store = table.data

    def entries() -> Iterable[tuple[bytes, bytes]]:
        # A dict cannot be iterated while the agent writes to it; RocksDB iterates a snapshot.
        return list(store.items()) if settings.store == "memory" else store.items()

    def owned(partition: int) -> bool:
        return TP(table.changelog_topic.get_topic_name(), partition) in app.assignor.assigned_actives()

    sweep = TableSweep(
        table, entries, lambda value: expired(value, int(time.time() * 1_000_000), window_us), owned
    )
    app.on_partitions_revoked.connect(lambda *_, **__: sweep.restart())
    return sweep
