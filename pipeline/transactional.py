"""Exactly-once processing: each stage as a consume-transform-produce loop in Kafka transactions.

With `processing_guarantee=exactly_once` a worker runs its two stages on confluent-kafka
instead of Faust. Each loop reads a batch, works it out with the same pure functions as the
agents (`pipeline.stages`), and writes the batch's outputs, its state changes (the dedup
window's changelog) and its input offsets in one transaction. The offsets carry the consumer
group's generation (KIP-447), so a worker that lost its partitions cannot commit for them.

What readers see: consumers that read committed records only (`isolation.level`
read_committed, the default of every confluent-kafka client and of the connectors) see each
batch's records once, or not at all. A crash at any point leaves nothing of an unfinished
batch visible; the next owner of its partitions reads it again from the last committed
offsets, with the dedup state as of that commit. So a SIGKILL or a broker restart gives no
duplicate at members, where at-least-once may repeat a batch.

The dedup state lives in memory, one dict per input partition, rebuilt from its own
compacted changelog when a partition is assigned (`ChangelogState`). It is separate from the
Faust table's changelog: the Faust store would also read records of aborted transactions.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition

from connectors.core import Outcome
from connectors.member_topic import MemberRecords
from pipeline.control import DirectoryView
from pipeline.dedupe import Verdict, expired, observe_alert
from pipeline.kafka import make_consumer, make_producer, read_partitions
from pipeline.metrics import Metrics
from pipeline.normalise import Limits
from pipeline.producer import Record
from pipeline.serde import alert_codec
from pipeline.settings import Settings
from pipeline.stages import dispatch_batch, normalise_batch, observe_deliveries
from pipeline.topics import ENRICHED, NORMALISED, RAW, dedup_eos_changelog, member_topic, producer_of_topic

log = logging.getLogger(__name__)

#: How long the broker keeps a transaction open for a producer that went silent. Readers of
#: its partitions wait that long at most; a worker restarted under the same `instance`
#: aborts what it left open at once, without waiting.
TRANSACTION_TIMEOUT_MS = 30_000
#: Transactions that keep aborting for this long (a batch the broker keeps refusing, not a
#: broker restarting) end the process, and the orchestrator restarts it, rather than spinning.
_ABORTING_SECONDS = 180.0


class Polled(NamedTuple):
    """A consumed record with the attributes the stages read (`pipeline.stages.Message`)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Any


def polled(message: Any) -> Polled:
    return Polled(
        message.topic(),
        message.partition(),
        message.offset(),
        message.key(),
        message.value(),
        message.headers(),
    )


def _spans(messages: Iterable[Polled]) -> dict[tuple[str, int], tuple[int, int]]:
    """The first and last offset read, per (topic, partition)."""
    spans: dict[tuple[str, int], tuple[int, int]] = {}
    for m in messages:
        key = (m.topic, m.partition)
        first, last = spans.get(key, (m.offset, m.offset))
        spans[key] = (min(first, m.offset), max(last, m.offset))
    return dict(sorted(spans.items()))


def next_offsets(messages: Iterable[Polled]) -> list[TopicPartition]:
    """The offsets to commit after a batch: one past the last record read, per partition."""
    return [TopicPartition(t, p, last + 1) for (t, p), (_, last) in _spans(messages).items()]


def first_offsets(messages: Iterable[Polled]) -> list[TopicPartition]:
    """Where to read a batch again from: its first offset, per partition."""
    return [TopicPartition(t, p, first) for (t, p), (first, _) in _spans(messages).items()]


class ChangelogState:
    """Key -> bytes state per input partition, in memory, backed by a compacted changelog whose
    partition p holds the state of input partition p.

    `put` and `delete` keep a change pending and `changes` gives it to the transaction as a
    changelog record (a tombstone for a deletion); `commit` folds pending changes in once the
    transaction committed, `abort` drops them. `get` sees pending changes, so a batch sees its
    own earlier records.
    """

    def __init__(self, settings: Settings, topic: str) -> None:
        self._settings = settings
        self.topic = topic
        self._partitions: dict[int, dict[bytes, bytes]] = {}
        self._pending: dict[tuple[int, bytes], bytes | None] = {}  # None: deleted

    def get(self, partition: int, key: bytes) -> bytes | None:
        pending = self._pending.get((partition, key), _NOT_PENDING)
        if pending is not _NOT_PENDING:
            return pending  # type: ignore[return-value]
        return self._partitions[partition].get(key)

    def put(self, partition: int, key: bytes, value: bytes) -> None:
        self._pending[(partition, key)] = value

    def delete(self, partition: int, key: bytes) -> None:
        self._pending[(partition, key)] = None

    def pending(self, partition: int, key: bytes) -> bool:
        return (partition, key) in self._pending

    def changes(self) -> list[tuple[int, bytes, bytes | None]]:
        return [(p, k, v) for (p, k), v in self._pending.items()]

    def commit(self) -> None:
        for (p, k), v in self._pending.items():
            if v is None:
                self._partitions[p].pop(k, None)
            else:
                self._partitions[p][k] = v
        self._pending.clear()

    def committed(self, partition: int) -> dict[bytes, bytes]:
        """The committed state of one partition (empty when it is not held here)."""
        return self._partitions.get(partition, {})

    def abort(self) -> None:
        self._pending.clear()

    def __len__(self) -> int:
        return sum(map(len, self._partitions.values()))

    @property
    def partitions(self) -> set[int]:
        return set(self._partitions)

    def keep_only(self, partitions: Iterable[int]) -> None:
        """Forget every partition not in `partitions`."""
        keep = set(partitions)
        for p in set(self._partitions) - keep:
            del self._partitions[p]

    def restore(self, partitions: Iterable[int]) -> int:
        """Read the changelog of `partitions` (committed records only) from its start to its end;
        returns how many records were read."""
        wanted = sorted(set(partitions) - set(self._partitions))
        if not wanted:
            return 0
        tables: dict[int, dict[bytes, bytes]] = {p: {} for p in wanted}
        read = 0
        for records in read_partitions(self._settings, self.topic, dict.fromkeys(wanted, OFFSET_BEGINNING)):
            for message in records:
                table, key, value = tables[message.partition()], message.key(), message.value()
                if value is None:
                    table.pop(key, None)
                else:
                    table[key] = value
            read += len(records)
        self._partitions.update(tables)
        return read


_NOT_PENDING = object()


class Sweep:
    """Deletes state entries that `expired` says are over, a slice of `per_step` keys per step,
    one partition after another, so a step's cost stays small however large the state.

    An entry with a change pending in the batch is left alone: the batch's change wins.
    """

    def __init__(self, state: ChangelogState, expired: Callable[[bytes], bool], per_step: int = 1000) -> None:
        self._state, self._expired, self._per_step = state, expired, per_step
        self._partition = -1
        self._keys: list[bytes] = []

    def step(self) -> int:
        """Look at the next slice of keys; returns how many were deleted (pending the commit)."""
        if not self._keys:
            held = sorted(self._state.partitions)
            if not held:
                return 0
            later = [p for p in held if p > self._partition]
            self._partition = later[0] if later else held[0]
            self._keys = list(self._state.committed(self._partition))
        partition, table = self._partition, self._state.committed(self._partition)
        deleted = 0
        for key in self._keys[-self._per_step :]:
            value = table.get(key)
            if value is not None and not self._state.pending(partition, key) and self._expired(value):
                self._state.delete(partition, key)
                deleted += 1
        del self._keys[-self._per_step :]
        return deleted


@dataclass(frozen=True)
class Step:
    """A batch worked out: the records to write, state changes aside (they are in the state),
    and what to do once the transaction committed (count it)."""

    records: list[Record]
    committed: Callable[[], None]


Work = Callable[[list[Polled]], Step]


class TransactionalLoop:
    """One stage: batches in, their outputs, state changes and offsets out in one transaction.

    `topics` are names, or patterns starting with `^` (librdkafka's regex subscription: a
    partner's raw topic made later is read without a restart). The stage's consumer joins the
    pipeline's group, so switching a stopped pipeline between guarantees keeps its offsets.
    """

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        stage: str,
        topics: list[str],
        work: Work,
        state: ChangelogState | None = None,
    ) -> None:
        self.settings, self.metrics, self.stage = settings, metrics, stage
        self.topics, self.work, self.state = topics, work, state
        self.ready = threading.Event()
        self._busy: tuple[str, float] | None = None  # the transactional call under way, since when
        self._aborts = 0
        self._aborting_since = 0.0

    @property
    def call_timeout(self) -> float:
        """How long the client may take over one call before it gives up (and the call is retried
        or the batch aborted): two thirds of the stall limit, so the watchdog only ever ends a
        call the client failed to give up on."""
        return self.settings.stall_seconds * 2 / 3

    def run(self, stop: threading.Event) -> None:
        """Process batches until `stop` is set; the transaction under way is finished first."""
        settings = self.settings
        producer = make_producer(
            settings,
            **{
                "transactional.id": f"{settings.group_id}-{self.stage}-{settings.instance}",
                "transaction.timeout.ms": TRANSACTION_TIMEOUT_MS,
                "batch.size": 512 * 1024,
                "queue.buffering.max.messages": 500_000,
            },
        )
        producer.init_transactions(self.call_timeout)
        consumer = make_consumer(
            settings,
            settings.group_id,
            **{
                "client.id": f"{settings.instance}-{self.stage}",
                "heartbeat.interval.ms": int(min(3.0, settings.session_timeout_seconds / 3) * 1000),
                "fetch.wait.max.ms": settings.fetch_wait_ms,
                "topic.metadata.refresh.interval.ms": 30_000,
            },
        )
        consumer.subscribe(self.topics, on_assign=self._assigned, on_revoke=self._revoked, on_lost=self._lost)
        try:
            while not stop.is_set():
                messages = self._consume(consumer)
                if messages:
                    self._transact(consumer, producer, messages)
        finally:
            consumer.close()
            producer.flush(self.call_timeout)

    def _consume(self, consumer: Consumer) -> list[Polled]:
        batch: list[Polled] = []
        for message in consumer.consume(self.settings.batch_size, timeout=self.settings.batch_seconds):
            error = message.error()
            if error is None:
                batch.append(polled(message))
            elif error.fatal():
                raise KafkaException(error)
            else:  # transient (a broker restarting, a topic not yet made): the client retries
                log.warning("%s: %s", self.stage, error)
        return batch

    def _transact(self, consumer: Consumer, producer: Producer, messages: list[Polled]) -> None:
        t0 = time.perf_counter()
        step = self.work(messages)
        t1 = time.perf_counter()
        producer.begin_transaction()
        try:
            for topic, key, value, headers in step.records:
                _produce(producer, topic, key, value, headers or None)
            if self.state is not None:
                changelog = self.state.topic
                for partition, key, value in self.state.changes():
                    _produce(producer, changelog, key, value, None, partition)
            offsets = next_offsets(messages)
            t2 = time.perf_counter()
            metadata = consumer.consumer_group_metadata()
            self._call("send_offsets_to_transaction", producer.send_offsets_to_transaction, offsets, metadata)
            t3 = time.perf_counter()
            self._call("commit_transaction", producer.commit_transaction)
            t4 = time.perf_counter()
            log.debug(
                "%s: %d in, %d out; work %.1f ms, produce %.1f ms, offsets %.1f ms, commit %.1f ms",
                *(self.stage, len(messages), len(step.records)),
                *((b - a) * 1000 for a, b in ((t0, t1), (t1, t2), (t2, t3), (t3, t4))),
            )
        except KafkaException as exc:
            error = exc.args[0]
            if not error.txn_requires_abort():
                raise
            self._abort(consumer, producer, messages, error)
            return
        self._aborts = 0
        if self.state is not None:
            self.state.commit()
            self.metrics.dedup_keys.set(len(self.state))
        self.metrics.transactions.labels(self.stage, "committed").inc()
        step.committed()

    def _abort(
        self, consumer: Consumer, producer: Producer, messages: list[Polled], error: KafkaError
    ) -> None:
        """Drop the batch's writes and state changes, and read it again."""
        self._aborts += 1
        if self._aborts == 1:
            self._aborting_since = time.monotonic()
        log.warning("%s: transaction aborted (%d in a row): %s", self.stage, self._aborts, error)
        if time.monotonic() - self._aborting_since > _ABORTING_SECONDS:
            raise KafkaException(error)
        self._call("abort_transaction", producer.abort_transaction)
        if self.state is not None:
            self.state.abort()
        time.sleep(min(5.0, 0.1 * 2 ** min(self._aborts, 6)))  # a broker restarting: give it time
        self.metrics.transactions.labels(self.stage, "aborted").inc()
        for position in first_offsets(messages):
            try:
                consumer.seek(position)
            except KafkaException as exc:  # no longer ours: its next owner reads it from the commit
                log.info("%s: not reading %s again here: %s", self.stage, position, exc)

    def _call(self, name: str, call: Callable[..., None], *args: Any) -> None:
        """A blocking transactional call, made again while the client says its outcome is not
        known yet (a timeout: librdkafka documents such calls as safe to repeat); watched by
        `run_loops` through `stalled`."""
        self._busy = (name, time.monotonic())
        try:
            while True:
                try:
                    call(*args, self.call_timeout)
                    return
                except KafkaException as exc:
                    if not exc.args[0].retriable():
                        raise
                    log.warning("%s: repeating %s: %s", self.stage, name, exc.args[0])
        finally:
            self._busy = None

    def stalled(self) -> str | None:
        """Why this loop is stuck, when a transactional call has not returned for the setting's
        `stall_seconds`. The client should have given up on it after `call_timeout`; the
        restarted worker aborts the open transaction and goes on from the last commit."""
        busy, limit = self._busy, self.settings.stall_seconds
        if busy is not None and time.monotonic() - busy[1] > limit:
            return f"the {self.stage} loop's {busy[0]} has not returned for {limit:.0f}s"
        return None

    def _assigned(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if self.state is not None:
            numbers = [tp.partition for tp in partitions]
            # Partitions held before this rebalance and kept are up to date: nobody else owned
            # them in between. Only new ones are read from the changelog.
            self.state.keep_only(numbers)
            started = time.monotonic()
            read = self.state.restore(numbers)
            self.metrics.dedup_restored.inc(read)
            if read:
                log.info(
                    "%s: restored %d state records in %.1fs", self.stage, read, time.monotonic() - started
                )
            self.metrics.dedup_keys.set(len(self.state))
        self.ready.set()

    def _revoked(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Called between transactions: the state of revoked partitions is kept until the next
        # assignment says whether they come back.
        log.debug("%s: %d partitions revoked", self.stage, len(partitions))

    def _lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Lost without a clean hand-over (a session timeout): another worker may have written
        # their state meanwhile, so it is read again if they come back.
        if self.state is not None:
            lost = {tp.partition for tp in partitions}
            self.state.keep_only(self.state.partitions - lost)


def _produce(
    producer: Producer,
    topic: str,
    key: bytes | None,
    value: bytes | None,
    headers: Any,
    partition: int = -1,
) -> None:
    while True:
        try:
            producer.produce(topic, value, key, partition=partition, headers=headers)
            return
        except BufferError:  # the client's queue is full: let it send, then go on
            producer.poll(0.005)


def normalise_work(settings: Settings, metrics: Metrics, directory: DirectoryView) -> Work:
    """The normalise stage over a batch of raw records (`pipeline.stages.normalise_batch`)."""
    limits, codec, out_topic = Limits(settings.max_message_bytes), alert_codec(), settings.topic(NORMALISED)
    writer_of = functools.partial(producer_of_topic, settings)

    def work(messages: list[Polled]) -> Step:
        started = time.perf_counter()
        now = datetime.now(UTC)
        batch = normalise_batch(settings, messages, directory.feeds, limits, now, codec, out_topic, writer_of)
        seconds = time.perf_counter() - started
        return Step(batch.records, lambda: batch.count(metrics, seconds))

    return work


def dispatch_work(
    settings: Settings, metrics: Metrics, directory: DirectoryView, state: ChangelogState
) -> Work:
    """Dedupe, enrich and route a batch of normalised alerts (`pipeline.stages.dispatch_batch`);
    the audit records and the member records go out in the same transaction."""
    codec, enriched_topic = alert_codec(), settings.topic(ENRICHED)
    window_us = settings.dedup_window_seconds * 1_000_000

    def format_for(member_id: str) -> str:
        member = directory.index.directory.get(member_id)
        return member.delivery_format if member else "json"

    member_records = MemberRecords(lambda member_id: member_topic(settings, member_id), format_for)

    sweep = Sweep(state, lambda value: expired(value, int(time.time() * 1_000_000), window_us))

    def work(messages: list[Polled]) -> Step:
        def sighting(i: int, alert: Any) -> Any:
            message = messages[i]
            key = message.key or b""
            stored = state.get(message.partition, key)
            seen, verdict = observe_alert(stored, alert, (message.partition, message.offset), window_us)
            if verdict is not Verdict.REPLAY:
                state.put(message.partition, key, seen.to_bytes())
            return seen, verdict

        batch = dispatch_batch(
            messages, sighting, codec, enriched_topic, directory.index, directory.rules, directory.asn
        )
        forgotten = sweep.step()  # windows that closed long ago leave the state in the same transaction
        records, _, results = member_records(batch.deliveries)
        refused = next((r for r in results if r.outcome is not Outcome.DELIVERED), None)
        if refused is not None:
            raise ValueError(f"the router produced a delivery its own connector refuses: {refused.detail}")

        def committed() -> None:
            batch.count(metrics)
            metrics.dedup_expired.inc(forgotten)
            observe_deliveries(metrics, batch.deliveries)

        return Step(batch.records + records, committed)

    return work


def stage_loops(
    settings: Settings, metrics: Metrics, directory: DirectoryView
) -> tuple[TransactionalLoop, TransactionalLoop]:
    """The worker's two loops: normalise (the shared raw topic and every partner's own raw
    topic) and dispatch (normalised alerts, with the dedup state)."""
    raw = settings.topic(RAW)
    state = ChangelogState(settings, dedup_eos_changelog(settings))
    normalise_loop = TransactionalLoop(
        settings,
        metrics,
        "normalise",
        [raw, "^" + raw.replace(".", r"\.") + r"\..+$"],
        normalise_work(settings, metrics, directory),
    )
    dispatch_loop = TransactionalLoop(
        settings,
        metrics,
        "dispatch",
        [settings.topic(NORMALISED)],
        dispatch_work(settings, metrics, directory, state),
        state,
    )
    return normalise_loop, dispatch_loop


def run_loops(
    loops: Sequence[TransactionalLoop], stop: threading.Event, on_failure: Callable[[str], None]
) -> None:
    """Run each loop in its own thread until `stop`; a loop that fails, or whose transactional
    call has not returned for `stall_seconds`, calls `on_failure`."""

    def guard(loop: TransactionalLoop) -> None:
        try:
            loop.run(stop)
        except Exception as exc:  # any failure ends the worker, reported first
            log.exception("The %s loop failed", loop.stage)
            on_failure(f"the {loop.stage} loop failed: {exc!r}")

    threads = [threading.Thread(target=guard, args=(loop,), name=f"eos-{loop.stage}") for loop in loops]
    for thread in threads:
        thread.start()
    # The client has been seen to hang in a commit across a broker restart (past its own
    # timeout); a stalled loop ends the worker, as a failed one does.
    while any(thread.is_alive() for thread in threads):
        for thread in threads:
            thread.join(timeout=1.0)
        for loop in loops:
            if (reason := loop.stalled()) is not None:
                on_failure(reason)
                return
