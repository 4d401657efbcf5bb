"""Deliveries put on member topics exactly as the pipeline's router writes them."""

from __future__ import annotations

from collections.abc import Iterable

from connectors.core import Delivery
from connectors.member_topic import encode
from pipeline.kafka import make_producer
from pipeline.settings import Settings
from pipeline.topics import member_topic
from tests.unit.connectors.deliveries import member_alert


def put_deliveries(
    settings: Settings, member_ids: Iterable[str], per_member: int, rule: str = "subscription:s1"
) -> dict[str, list[tuple[str, bytes]]]:
    """`per_member` GREEN alerts on each member's topic; (idempotency key, value) by member."""
    producer = make_producer(settings)
    written: dict[str, list[tuple[str, bytes]]] = {}
    for member_id in member_ids:
        for n in range(per_member):
            delivery = Delivery(member_id, rule, member_alert(n, tlp="GREEN"))
            value, headers = encode(delivery, "json")
            written.setdefault(member_id, []).append((delivery.key, value))
            producer.produce(
                member_topic(settings, member_id), value, delivery.alert["id"].encode(), headers=headers
            )
    assert producer.flush(60) == 0
    return written
