"""The partner SDK: send a feed's records into the network, safely, on confluent-kafka.

    with FeedProducer("kafka.cwn.example:9093", feed="ncsc/ids-sensors",
                      producer="ncsc-sensor-gateway") as out:
        for line in eve_file:
            out.send(line)
    print(out.summary())

Guarantees: the producer is idempotent with `acks=all`, so a record the broker acknowledged is
on every in-sync replica, and retries never duplicate it; records are compressed (zstd) and
batched. `send` applies back-pressure: when the client's queue is full it waits for
acknowledgements instead of failing. Every record gets a delivery report; `flush` waits for
all of them and the summary says how many were acknowledged and how many failed, with the
first errors, so a caller's exit code can be honest.

Keep the client's record limit (`message.max.bytes`, 1,000,000 bytes here, under the
broker's default of 1,048,588 by more than a batch's overhead) below the topic's
`max.message.bytes`: the client then refuses a larger record at `send`, which counts it as
failed, before any broker sees it. With a higher client limit the broker refuses it
instead, and librdkafka 2.16 can then report it as delivered: when a later batch of the same
partition was already in flight and succeeds, librdkafka takes that success as proof that
the earlier batch was written too ("implicitly acked by subsequent batch success" in its
`eos` debug log). Seen about once in two hundred tries of a 2 MB record followed at once by
a small one.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

RAW_TOPIC = "cwn.alerts.raw"
_MAX_ERRORS_KEPT = 20


@dataclass
class DeliverySummary:
    """What happened to the records sent so far."""

    feed: str
    sent: int = 0
    acknowledged: int = 0
    failed: int = 0
    bytes: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    @property
    def pending(self) -> int:
        return self.sent - self.acknowledged - self.failed

    def as_dict(self) -> dict[str, Any]:
        return {
            "feed": self.feed,
            "sent": self.sent,
            "acknowledged": self.acknowledged,
            "failed": self.failed,
            "pending": self.pending,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
            "errors": self.errors,
        }


class FeedProducer:
    """Writes one feed's raw records to the network's raw topic, with the feed's headers."""

    def __init__(
        self,
        bootstrap: str,
        feed: str,
        producer: str,
        fmt: str | None = None,
        topic: str = RAW_TOPIC,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        self.topic = topic
        self._headers = [("feed", feed.encode()), ("producer", producer.encode())]
        if fmt:
            self._headers.append(("format", fmt.encode()))
        self._summary = DeliverySummary(feed)
        self._started = time.monotonic()
        self._producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "enable.idempotence": True,
                "acks": "all",
                "compression.type": "zstd",
                "linger.ms": 20,
                "batch.size": 1_000_000,
                "message.max.bytes": 1_000_000,
                "client.id": f"cwn-feed-{producer}",
                **(config or {}),
            }
        )

    def __enter__(self) -> FeedProducer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.flush()

    def send(self, value: bytes, key: bytes | None = None) -> None:
        """Queue one record; blocks while the client's queue is full (back-pressure).

        A record over the client's limit is counted as sent and failed, with its error, and
        never reaches a broker; the records after it go on."""
        while True:
            try:
                self._producer.produce(
                    self.topic, value=value, key=key, headers=self._headers, on_delivery=self._report
                )
                break
            except BufferError:
                self._producer.poll(0.1)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.MSG_SIZE_TOO_LARGE:
                    raise
                self._failed(f"MSG_SIZE_TOO_LARGE: a record of {len(value)} bytes, over the client's limit")
                break
        self._summary.sent += 1
        self._summary.bytes += len(value)
        self._producer.poll(0)

    def flush(self, timeout: float = 60.0) -> DeliverySummary:
        """Wait until every record sent has its delivery report, or `timeout` passes."""
        deadline = time.monotonic() + timeout
        while self._summary.pending and time.monotonic() < deadline:
            self._producer.flush(min(1.0, max(0.0, deadline - time.monotonic())))
        return self.summary()

    def summary(self) -> DeliverySummary:
        self._summary.seconds = time.monotonic() - self._started
        return self._summary

    def _report(self, error: KafkaError | None, message: Message) -> None:
        if error is None:
            self._summary.acknowledged += 1
            return
        self._failed(f"{error.name()}: {error.str()}")

    def _failed(self, error: str) -> None:
        self._summary.failed += 1
        if len(self._summary.errors) < _MAX_ERRORS_KEPT:
            self._summary.errors.append(error)
