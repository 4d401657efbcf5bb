"""Delivery to a member's own Kafka topic, `cwn.deliver.<member_id>`.

The record a member reads: key = alert id, value = the alert as JSON (or Avro when the member
asks for it), headers = the idempotency key, the routing rule and the content type. Members
see only what concerns them: the ids of other members involved or addressed are removed.
The topic is readable by that member alone, so its ceiling is RED.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from connectors.core import Delivery, Outcome, Result, refuse_above_ceiling
from pipeline.serde import alert_codec, to_json

#: send(topic, key, value, headers) -> awaitable acknowledgement.
SendFn = Callable[[str, bytes, bytes, list[tuple[str, bytes]]], Awaitable[Awaitable[Any]]]


def member_view(alert: dict[str, Any], member_id: str) -> dict[str, Any]:
    """The alert as one member may see it: no other member's id, no partner's raw bytes."""
    view = dict(alert)
    view["members_inside"] = [member_id] if member_id in alert.get("members_inside", ()) else []
    view["recipients"] = [member_id] if member_id in alert.get("recipients", ()) else []
    view["raw"] = None
    return view


def encode(delivery: Delivery, fmt: str) -> tuple[bytes, list[tuple[str, bytes]]]:
    view = member_view(delivery.alert, delivery.member_id)
    if fmt == "avro":
        value, content_type = alert_codec().encode(view), b"application/vnd.apache.avro"
    else:
        value, content_type = to_json(view), b"application/json"
    headers = [
        ("cwn.idempotency-key", delivery.key.encode()),
        ("cwn.rule", delivery.rule.encode()),
        ("content-type", content_type),
    ]
    return value, headers


class MemberTopicConnector:
    """Writes deliveries to member topics through an async producer; RED-capable."""

    name = "member-topic"
    tlp_ceiling = "RED"

    def __init__(
        self, send: SendFn, topic_for: Callable[[str], str], format_for: Callable[[str], str]
    ) -> None:
        self._send = send
        self._topic_for = topic_for
        self._format_for = format_for
        self._sent = 0
        self._failed = 0

    async def open(self) -> None:
        return None

    async def send_batch(self, batch: Sequence[Delivery]) -> list[Result]:
        """Send every delivery, then wait for all acknowledgements; one result per delivery."""
        results: list[Result | None] = [None] * len(batch)
        pending: list[tuple[int, Awaitable[Any]]] = []
        for i, delivery in enumerate(batch):
            refused = refuse_above_ceiling(delivery, self.tlp_ceiling)
            if refused:
                results[i] = refused
                continue
            value, headers = encode(delivery, self._format_for(delivery.member_id))
            topic = self._topic_for(delivery.member_id)
            try:
                pending.append(
                    (i, await self._send(topic, str(delivery.alert["id"]).encode(), value, headers))
                )
            except Exception as exc:  # noqa: BLE001 - classified as retriable, reported per item
                results[i] = Result(Outcome.RETRY, f"send failed: {exc}")
        acks = await asyncio.gather(*(ack for _, ack in pending), return_exceptions=True)
        for (i, _), ack in zip(pending, acks, strict=True):
            if isinstance(ack, BaseException):
                results[i] = Result(Outcome.RETRY, f"not acknowledged: {ack}")
            else:
                results[i] = Result(Outcome.DELIVERED)
        done = [r for r in results if r is not None]
        self._sent += sum(r.outcome is Outcome.DELIVERED for r in done)
        self._failed += sum(r.outcome is not Outcome.DELIVERED for r in done)
        return done

    async def close(self) -> None:
        return None

    def health(self) -> dict[str, Any]:
        return {"connector": self.name, "delivered": self._sent, "failed": self._failed}
