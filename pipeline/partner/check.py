"""The offline check behind `cwn parse`: a partner's file through the normaliser, without Kafka.

It runs the very code the normalise agent runs (`pipeline.normalise.normalise`) on the records
`cwn produce` would send, so "parses cleanly here" means "is accepted there", apart from the
producer identity, which only the network can check.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pipeline.alert import Alert
from pipeline.feeds import FeedRegistry, FeedSpec
from pipeline.normalise import FEED_HEADER, PRODUCER_HEADER, Limits, normalise
from pipeline.partner.records import FileRecord


@dataclass
class CheckSummary:
    records: int = 0
    accepted: int = 0
    skipped: int = 0
    rejected: int = 0
    alerts: int = 0
    rejections: int = 0

    @property
    def clean(self) -> bool:
        """True when nothing in the file was rejected, whole or in part."""
        return self.rejections == 0


def check_records(
    records: Iterable[FileRecord],
    spec: FeedSpec,
    limits: Limits,
    now: datetime,
    on_alert: Callable[[Alert], None],
    on_rejection: Callable[[dict[str, Any]], None],
) -> CheckSummary:
    """Normalise each record as feed `spec`; report every alert and every located rejection."""
    feeds = FeedRegistry([spec])
    headers = {FEED_HEADER: spec.id.encode(), PRODUCER_HEADER: spec.producers[0].encode()}
    summary = CheckSummary()
    for record in records:
        summary.records += 1
        parsed = normalise(record.value, headers, feeds, limits, now)
        setattr(summary, parsed.outcome, getattr(summary, parsed.outcome) + 1)
        for alert in parsed.alerts:
            summary.alerts += 1
            on_alert(alert)
        for rejected in parsed.rejected:
            summary.rejections += 1
            # A record that is one line of the file: the file's line number says it all.
            item = None if record.line is not None and rejected.item == "line 1" else rejected.item or None
            on_rejection(
                {"record": record.index, "line": record.line, "item": item}
                | {"field": rejected.field, "reason": rejected.reason, "feed": rejected.feed}
            )
    return summary
