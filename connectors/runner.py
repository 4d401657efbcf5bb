"""`cwn connect KIND`: consume the member topics of the members that use a connector kind.

One runner serves one kind. It reads the directory live from the control topics and
subscribes, in the consumer group `<group>-connect-<kind>`, to the topics of exactly the members
that have a target of its kind; starting more runners spreads the members over them. Each
(member, target) gets its own `Endpoint`, so a slow or dead endpoint delays only itself: when
its queue reaches `queue_limit` that member's topic alone is paused, and resumed once the queue
has drained to half.

Every delivery ends with a receipt on `cwn.delivery.receipts` (member, target, alert,
connector, outcome, attempts, latency); one that fails for good also goes, with the original
bytes and the last error, to `cwn.delivery.deadletter`. Offsets are committed only after those
records are acknowledged by the broker (see `OffsetBook`), so the guarantee is at least once:
a crash re-delivers what was unfinished, and receivers deduplicate on the idempotency key.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from connectors.core import Delivery, Outcome, Result
from connectors.endpoint import Endpoint, Limits, Pending
from connectors.kinds import Kind
from connectors.metrics import ConnectorMetrics
from connectors.offsets import OffsetBook, Partition
from connectors.settings import ConnectSettings
from pipeline.directory import Directory, Member, Target
from pipeline.kafka import make_consumer
from pipeline.producer import AsyncProducer, Record
from pipeline.serde import alert_codec, from_json, to_json
from pipeline.settings import Settings
from pipeline.topics import DELIVERY_DEADLETTER, RECEIPTS, member_topic_prefix

log = logging.getLogger(__name__)

EndpointKey = tuple[str, str]


def group_id(settings: Settings, kind: str) -> str:
    return f"{settings.group_id}-connect-{kind}"


def users(directory: Directory, kind: str) -> dict[str, list[Target]]:
    """Members with at least one target of `kind`, and those targets."""
    out: dict[str, list[Target]] = {}
    for member in directory:
        targets = [t for t in member.targets if t.type == kind]
        if targets:
            out[member.id] = targets
    return out


def decode(value: bytes, headers: dict[str, bytes]) -> dict[str, Any]:
    """The alert a member topic record carries, as member-facing JSON values."""
    if headers.get("content-type") == b"application/vnd.apache.avro":
        return from_json(to_json(alert_codec().decode(value)))
    alert = from_json(value)
    if not isinstance(alert, dict) or "id" not in alert or "tlp" not in alert:
        raise ValueError("not an alert: no id or tlp")
    return alert


def _seconds_since(stamp: str | None, now: float) -> float | None:
    if not stamp:
        return None
    try:
        return now - datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class Runner:
    """Runs one kind's endpoints against the member topics until `stop` is set."""

    def __init__(
        self,
        kind: Kind,
        settings: Settings,
        connect: ConnectSettings,
        metrics: ConnectorMetrics,
        directory: Any,
    ) -> None:
        self.kind = kind
        self.settings = settings
        self.connect = connect
        self.metrics = metrics
        #: Anything with `.index.directory` and `.version` (a `DirectoryView`).
        self.directory = directory
        self.book = OffsetBook()
        self.endpoints: dict[EndpointKey, Endpoint] = {}
        self._targets: dict[EndpointKey, Target] = {}
        self._members: dict[str, list[EndpointKey]] = {}
        self._prefix = member_topic_prefix(settings)
        self._paused: set[Partition] = set()
        self._outbox: list[tuple[Pending, Result, str, str]] = []
        self._in_flight = asyncio.Semaphore(connect.max_in_flight)
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"connect-{kind.name}")
        self._consumer: Consumer | None = None
        self._producer: AsyncProducer | None = None
        self._version = -1
        self._subscribed: tuple[str, ...] | None = None
        self._read = metrics.deliveries.labels(kind.name, "read")
        self._skipped = metrics.deliveries.labels(kind.name, "skipped")

    def topics(self) -> list[str]:
        """The member topics this runner subscribes to (for the lag monitor's thread)."""
        return list(self._subscribed or ())

    # ----- lifecycle -------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        self._consumer = make_consumer(
            self.settings,
            group_id(self.settings, self.kind.name),
            **{"topic.metadata.refresh.interval.ms": 5000},
        )
        self._producer = AsyncProducer(self.settings)
        await self.kind.start()
        flusher = loop.create_task(self._flush_loop(stop), name="connect-flush")
        try:
            while not stop.is_set():
                await self._reconfigure()
                messages = await self._call(self._consumer.consume, 500, 0.2)
                if messages:
                    self._take(messages)
                await self._resume_drained()
        finally:
            await self._shutdown(flusher)

    async def _shutdown(self, flusher: asyncio.Task[None]) -> None:
        # Let endpoints finish what is quick to finish, then write the outcomes and commit.
        deadline = time.monotonic() + 5
        while self.book.outstanding() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        flusher.cancel()
        for endpoint in list(self.endpoints.values()):
            await endpoint.close()
        await self._flush()
        assert self._consumer is not None and self._producer is not None
        await self._call(self._consumer.close)
        self._producer.close()
        await self.kind.stop()
        self._executor.shutdown(wait=True)

    async def _call(self, fn: Any, *args: Any) -> Any:
        """Consumer calls, all on one thread: librdkafka's consumer is not shared across threads."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    # ----- directory -------------------------------------------------------------------------

    async def _reconfigure(self) -> None:
        if self.directory.version == self._version:
            return
        self._version = self.directory.version
        directory: Directory = self.directory.index.directory
        wanted: dict[EndpointKey, tuple[Member, Target]] = {}
        for member_id, targets in users(directory, self.kind.name).items():
            member = directory.get(member_id)
            assert member is not None
            for target in targets:
                wanted[(member_id, target.id)] = (member, target)
        for key in [k for k in self.endpoints if k not in wanted or wanted[k][1] != self._targets[k]]:
            await self._retire(key, wanted.get(key))
        for key, (member, target) in wanted.items():
            if key not in self.endpoints:
                try:
                    self._open(member, target)
                except ValueError as exc:
                    log.error("Target not served: %s", exc)
        self._members = {}
        for key in self.endpoints:
            self._members.setdefault(key[0], []).append(key)
        topics = tuple(sorted(self._prefix + m for m in self._members))
        if topics != self._subscribed:
            self._subscribed = topics
            assert self._consumer is not None
            if topics:
                await self._call(
                    lambda: self._consumer.subscribe(  # type: ignore[union-attr]
                        list(topics), on_assign=self._assigned, on_revoke=self._revoked
                    )
                )
            else:
                await self._call(self._consumer.unsubscribe)
            log.info("Connector %s serves %d member(s)", self.kind.name, len(topics))

    def _open(self, member: Member, target: Target) -> None:
        connector = self.kind.connector(member, target)
        key = (member.id, target.id)
        attempts = self.metrics.attempts
        name = self.kind.name
        counters = {o: attempts.labels(name, o.value) for o in Outcome}
        endpoint = Endpoint(
            member.id,
            target.id,
            connector,
            ceiling=target.tlp_ceiling,
            public=target.public,
            limits=Limits(target.batch_size, self.kind.linger, self.connect.send_timeout_seconds),
            policy=self.connect.retry,
            breaker=self.connect.breaker(),
            in_flight=self._in_flight,
            on_done=self._done,
            on_attempt=lambda outcome: counters[outcome].inc(),
        )
        self.endpoints[key] = endpoint.start()
        self._targets[key] = target

    async def _retire(self, key: EndpointKey, replacement: tuple[Member, Target] | None) -> None:
        """Stop an endpoint whose target was removed or changed; a changed one keeps its queue."""
        endpoint = self.endpoints.pop(key)
        target = self._targets.pop(key)
        left = endpoint.unfinished()
        await endpoint.close()
        member = self.directory.index.directory.get(key[0])
        if member is not None:
            self.kind.forget(member, target)
        if replacement is not None:
            try:
                self._open(*replacement)
            except ValueError as exc:
                log.error("Target not served: %s", exc)
        new = self.endpoints.get(key)
        for pending in left:
            if new is not None:
                new.put(pending)
            else:
                self._skipped.inc()
                self._settle(pending)

    # ----- consuming -------------------------------------------------------------------------

    def _assigned(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.info("Assigned %d member topic partition(s)", len(partitions))

    def _revoked(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        owned = [(p.topic, p.partition) for p in partitions]
        offsets = self.book.committable(owned)
        if offsets:
            try:
                consumer.commit(
                    offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()], asynchronous=False
                )
            except Exception:  # noqa: BLE001 - the new owner re-delivers from the last commit
                log.warning("Commit on revocation failed; some deliveries will be repeated")
        self.book.drop(owned)
        self._paused -= set(owned)

    def _take(self, messages: Iterable[Message]) -> None:
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() not in (KafkaError._PARTITION_EOF, KafkaError.UNKNOWN_TOPIC_OR_PART):
                    log.warning("Consumer error: %s", error)
                continue
            topic, partition, offset = message.topic(), message.partition(), message.offset()
            tp = (topic, partition)
            keys = self._members.get(topic[len(self._prefix) :], [])
            if not keys:
                self.book.read(tp, offset, 0)
                continue
            headers = {k: v for k, v in message.headers() or () if v is not None}
            try:
                alert = decode(message.value() or b"", headers)
            except Exception as exc:  # noqa: BLE001 - any undecodable record is dead-lettered
                self.book.read(tp, offset, 1)
                pending = Pending(Delivery(keys[0][0], "", {"id": "", "tlp": "RED"}), (tp, offset, message))
                self._outbox.append((pending, Result(Outcome.FAILED, f"undecodable: {exc}"[:300]), "", ""))
                continue
            rule = headers.get("cwn.rule", b"").decode(errors="replace")
            self.book.read(tp, offset, len(keys))
            for key in keys:
                endpoint = self.endpoints[key]
                self._read.inc()
                endpoint.put(Pending(Delivery(key[0], rule, alert), (tp, offset, message)))
                if len(endpoint) >= self.connect.queue_limit and tp not in self._paused:
                    self._paused.add(tp)
                    assert self._consumer is not None
                    self._executor.submit(self._consumer.pause, [TopicPartition(*tp)])
        self.metrics.queued.labels(self.kind.name).set(sum(len(e) for e in self.endpoints.values()))
        self.metrics.paused.labels(self.kind.name).set(len(self._paused))

    async def _resume_drained(self) -> None:
        for tp in list(self._paused):
            keys = self._members.get(tp[0][len(self._prefix) :], [])
            if all(
                len(self.endpoints[k]) <= self.connect.queue_limit // 2 for k in keys if k in self.endpoints
            ):
                self._paused.discard(tp)
                assert self._consumer is not None
                await self._call(self._consumer.resume, [TopicPartition(*tp)])

    # ----- outcomes --------------------------------------------------------------------------

    def _done(self, endpoint: Endpoint, pending: Pending, result: Result) -> None:
        self._outbox.append((pending, result, endpoint.member_id, endpoint.target_id))
        state = endpoint.breaker.state.value
        self.metrics.circuit_state.labels(self.kind.name, endpoint.member_id, endpoint.target_id).set(state)

    def _settle(self, pending: Pending) -> None:
        tp, offset, _ = pending.token
        self.book.done(tp, offset)

    async def _flush_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await asyncio.sleep(self.connect.commit_seconds)
            try:
                await self._flush()
            except Exception:
                log.exception("Writing receipts or committing offsets failed")
            for endpoint in self.endpoints.values():
                self.metrics.circuit_state.labels(self.kind.name, endpoint.member_id, endpoint.target_id).set(
                    endpoint.breaker.state.value
                )

    async def _flush(self) -> None:
        """Write receipts and dead letters, then commit what they finished."""
        outbox, self._outbox = self._outbox, []
        if outbox:
            assert self._producer is not None
            records: list[Record] = []
            for pending, result, member_id, target_id in outbox:
                records += self._records(pending, result, member_id, target_id)
            refused = await (await self._producer.send_batch(records))
            if refused:
                # Nothing of this round is settled; all of it is written again next round.
                self._outbox = outbox + self._outbox
                log.warning("The broker refused %d receipt(s) or dead letter(s); retrying", len(refused))
                return
            now = time.monotonic()
            for pending, result, _, _ in outbox:
                self._count(pending, result, now)
                self._settle(pending)
        offsets = self.book.committable()
        if offsets and self._consumer is not None:
            commits = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]
            try:
                await self._call(lambda: self._consumer.commit(offsets=commits, asynchronous=False))  # type: ignore[union-attr]
            except Exception as exc:  # noqa: BLE001 - e.g. during a rebalance; next round retries
                log.info("Commit deferred: %s", exc)
                return
            self.book.committed(offsets)

    def _count(self, pending: Pending, result: Result, now: float) -> None:
        name = self.kind.name
        outcome = "delivered" if result.outcome is Outcome.DELIVERED else "deadlettered"
        self.metrics.deliveries.labels(name, outcome).inc()
        self.metrics.delivery_seconds.labels(name).observe(now - pending.read_at)
        if outcome == "delivered":
            age = _seconds_since(pending.delivery.alert.get("time_observation"), time.time())
            if age is not None and age >= 0:
                self.metrics.latency_seconds.labels(name).observe(age)

    def _records(self, pending: Pending, result: Result, member_id: str, target_id: str) -> list[Record]:
        delivery = pending.delivery
        _, _, message = pending.token
        delivered = result.outcome is Outcome.DELIVERED
        member_id = member_id or delivery.member_id
        receipt = {
            "member": member_id,
            "target": target_id,
            "connector": self.kind.name,
            "alert": delivery.alert.get("id", ""),
            "key": delivery.key,
            "outcome": "delivered" if delivered else "deadlettered",
            "attempts": pending.attempts,
            "latency_seconds": round(time.monotonic() - pending.read_at, 6),
            "error": None if delivered else result.detail,
            "time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        }
        key = member_id.encode()
        records: list[Record] = [
            (
                self.settings.topic(RECEIPTS),
                key,
                orjson.dumps(receipt),
                [("content-type", b"application/json")],
            )
        ]
        if not delivered:
            headers = [
                *(message.headers() or ()),
                ("cwn.error", result.detail.encode()),
                ("cwn.member", member_id.encode()),
                ("cwn.target", target_id.encode()),
                ("cwn.connector", self.kind.name.encode()),
                ("cwn.attempts", str(pending.attempts).encode()),
            ]
            records.append((self.settings.topic(DELIVERY_DEADLETTER), key, message.value(), headers))
        return records
