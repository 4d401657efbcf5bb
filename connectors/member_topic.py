"""Delivery to a member's own Kafka topic, `cwn.deliver.<member_id>`.

The record a member reads: key = alert id, value = the alert as JSON (or Avro when the member
asks for it), headers = the idempotency key, the routing rule and the content type. Members
see only what concerns them: the ids of other members involved or addressed are removed.
The topic is readable by that member alone, so its ceiling is RED.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from connectors.core import Delivery, Outcome, Result, refuse_above_ceiling
from pipeline.producer import Record
from pipeline.serde import alert_codec, to_json

#: send_batch(records) -> awaitable that resolves to the (topic, key) pairs the broker refused.
SendBatchFn = Callable[[list[Record]], Awaitable[Awaitable[list[Any]]]]


_DELIVERED = Result(Outcome.DELIVERED)
#: A member topic is readable by its member alone.
_CEILING = "RED"


def member_view(alert: dict[str, Any], member_id: str) -> dict[str, Any]:
    """The alert as one member may see it: no other member's id, no partner's raw bytes."""
    view = dict(alert)
    view["members_inside"] = [member_id] if member_id in alert.get("members_inside", ()) else []
    view["recipients"] = [member_id] if member_id in alert.get("recipients", ()) else []
    view["raw"] = None
    return view


def encode_value(alert: dict[str, Any], member_id: str, fmt: str) -> tuple[bytes, bytes]:
    """The member's view of the alert in its format, and the content type."""
    view = member_view(alert, member_id)
    if fmt == "avro":
        return alert_codec().encode(view), b"application/vnd.apache.avro"
    return to_json(view), b"application/json"


_CONTENT_TYPES = {
    content_type: ("content-type", content_type)
    for content_type in (b"application/vnd.apache.avro", b"application/json")
}


def _encoded(alert: dict[str, Any], member_id: str, fmt: str) -> tuple[bytes, tuple[str, bytes]]:
    """`encode_value`, with its content type as the one shared header tuple."""
    value, content_type = encode_value(alert, member_id, fmt)
    return value, _CONTENT_TYPES[content_type]


def encode(delivery: Delivery, fmt: str) -> tuple[bytes, list[tuple[str, bytes]]]:
    value, content_type = encode_value(delivery.alert, delivery.member_id, fmt)
    return value, _headers(delivery, content_type)


def _headers(delivery: Delivery, content_type: bytes) -> list[tuple[str, bytes]]:
    return [
        ("cwn.idempotency-key", delivery.key.encode()),
        ("cwn.rule", delivery.rule.encode()),
        ("content-type", content_type),
    ]


class MemberTopicConnector:
    """Writes deliveries to member topics through an async producer; RED-capable."""

    name = "member-topic"
    tlp_ceiling = _CEILING

    def __init__(
        self, send_batch: SendBatchFn, topic_for: Callable[[str], str], format_for: Callable[[str], str]
    ) -> None:
        self._send_batch = send_batch
        self._records = MemberRecords(topic_for, format_for)
        self._sent = 0
        self._failed = 0

    async def open(self) -> None:
        return None

    async def send_batch(self, batch: Sequence[Delivery]) -> list[Result]:
        """Send every delivery, then wait for all acknowledgements; one result per delivery."""
        records, positions, results = self._records(batch, self.tlp_ceiling)
        try:
            refusals = await (await self._send_batch(records))
        except Exception as exc:  # noqa: BLE001 - classified as retriable, reported per item
            failure = Result(Outcome.RETRY, f"send failed: {exc}")
            for i in positions:
                results[i] = failure
        else:
            if refusals:
                self._mark_refused(refusals, records, positions, results)
        delivered = sum(r is _DELIVERED for r in results)
        self._sent += delivered
        self._failed += len(results) - delivered
        return results

    @staticmethod
    def _mark_refused(
        refusals: Sequence[Any], records: list[Record], positions: list[int], results: list[Result]
    ) -> None:
        """Mark the deliveries of records the broker refused as retriable (rare: found by scan)."""
        carried: dict[tuple[str, bytes | None], list[int]] = {}
        for (topic, key, _, _), i in zip(records, positions, strict=True):
            carried.setdefault((topic, key), []).append(i)
        for refusal in refusals:
            for i in carried.get((refusal.topic, refusal.key), ()):
                results[i] = Result(Outcome.RETRY, f"not acknowledged: {refusal.error}")

    async def close(self) -> None:
        return None

    def health(self) -> dict[str, Any]:
        return {"connector": self.name, "delivered": self._sent, "failed": self._failed}


class MemberRecords:
    """Turns deliveries into member-topic records, for the connector and for a transactional
    writer that produces them itself.

    Members not named in an alert (neither inside nor recipient) all see the same view of it,
    so that view is encoded once per alert and format, however many members it fans out to.
    """

    def __init__(self, topic_for: Callable[[str], str], format_for: Callable[[str], str]) -> None:
        self._topic_for = topic_for
        self._topics: dict[str, str] = {}
        self._format_for = format_for

    def __call__(
        self, batch: Sequence[Delivery], ceiling: str = _CEILING
    ) -> tuple[list[Record], list[int], list[Result]]:
        """The member-topic records for `batch`, the delivery each carries, and one result per
        delivery: delivered unless refused here (above the ceiling), until the broker says
        otherwise. Writes nothing: a transactional writer produces these itself.
        """
        results: list[Result] = [_DELIVERED] * len(batch)
        records: list[Record] = []
        positions: list[int] = []  # the delivery each record carries
        # Per alert, member and rule work is done once, not per delivery: an alert reaches
        # about fifty members, and the router hands over an alert's deliveries together. The
        # rule and content-type headers are shared tuples: pickled once per batch on the way
        # to the writer process, not once per record.
        members: dict[str, tuple[str, str, bytes]] = {}
        rules: dict[str, tuple[str, bytes]] = {}
        alert: dict[str, Any] | None = None
        refused: Result | None = None
        key = prefix = b""
        named: set[str] = set()
        shared: dict[str, tuple[bytes, tuple[str, bytes]]] = {}
        for i, delivery in enumerate(batch):
            if delivery.alert is not alert:
                alert = delivery.alert
                refused = refuse_above_ceiling(delivery, ceiling)
                key = str(alert["id"]).encode()
                prefix = key + b":"
                named = {*alert.get("members_inside", ()), *alert.get("recipients", ())}
                shared = {}
            if refused:
                results[i] = refused
                continue
            member_id = delivery.member_id
            member = members.get(member_id)
            if member is None:
                member = members[member_id] = (
                    self._topic(member_id),
                    self._format_for(member_id),
                    member_id.encode(),
                )
            topic, fmt, member_bytes = member
            if member_id in named:
                value, content_header = _encoded(alert, member_id, fmt)
            else:
                encoded = shared.get(fmt)
                if encoded is None:
                    encoded = shared[fmt] = _encoded(alert, member_id, fmt)
                value, content_header = encoded
            rule_header = rules.get(delivery.rule)
            if rule_header is None:
                rule_header = rules[delivery.rule] = ("cwn.rule", delivery.rule.encode())
            headers = [("cwn.idempotency-key", prefix + member_bytes), rule_header, content_header]
            records.append((topic, key, value, headers))
            positions.append(i)
        return records, positions, results

    def _topic(self, member_id: str) -> str:
        topic = self._topics.get(member_id)
        if topic is None:
            topic = self._topics[member_id] = self._topic_for(member_id)
        return topic
