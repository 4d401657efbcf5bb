"""`cwn bench --suite stages`: the CPU each alert costs the pipeline's own code, without Kafka.

The corpus is the pipeline benchmark's (`run.corpus`: the sample feed in Avro, 20% duplicates,
inside alerts and sector intelligence over `members` members), cut into batches as the agents
take them. Per alert, in process:

- `normalise`: parse and validate the raw record, encode the alert (`stages.normalise_batch`);
- `dispatch`: decode, the dedup decision (on a dict here, where the worker reads and writes its
  table), enrich, encode the audit record and route (`stages.dispatch_batch`);
- `member_records`: each delivery's member-topic record, the member's view of the alert
  encoded once per alert and format (`connectors.member_topic.MemberRecords`);
- `handoff`: framing the routing stage's records for the writer process (`writer_process.frame`).

The sum bounds what one core can do whatever Kafka costs: `alerts_per_core_s`. Read against
the pipeline suite's `raw_confluent`, it bounds `r_pipeline` from above for one worker
process. The corpus goes through twice on one routing index, and the second pass is timed: a
running worker's routing memo is warm.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from connectors.member_topic import MemberRecords
from pipeline.alert import Alert
from pipeline.asn import AsnDataset
from pipeline.bench.run import corpus
from pipeline.dedupe import Seen, Verdict, observe_alert
from pipeline.demo.feed import demo_feeds
from pipeline.directory import Directory, generate_members
from pipeline.normalise import Limits
from pipeline.routing import RoutingIndex
from pipeline.rules import EnrichmentRules
from pipeline.serde import alert_codec
from pipeline.settings import Settings
from pipeline.stages import dispatch_batch, normalise_batch
from pipeline.topics import member_topic
from pipeline.transactional import Polled
from pipeline.writer_process import frame

PARTS = ("normalise", "dispatch", "member_records", "handoff")


def run_stages_suite(
    members: int = 1152,
    alerts: int = 20_000,
    batch_size: int = 500,
    duplicate_ratio: float = 0.2,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Time each part per alert over the corpus; one JSON-ready dict."""
    settings = Settings()
    directory = Directory(generate_members(members))
    raw = [
        Polled("raw", 0, n, None, r.value, list(r.headers))
        for n, r in enumerate(corpus(directory, alerts, duplicate_ratio).records(alerts))
    ]
    index = RoutingIndex(directory)
    say(f"stages: {len(raw)} alerts, {members} members, a pass to warm up...")
    _one_pass(settings, raw, index, batch_size)
    say("stages: the timed pass...")
    spent, deliveries = _one_pass(settings, raw, index, batch_size)
    us = {part: round(spent[part] / len(raw) * 1e6, 1) for part in PARTS}
    total = sum(spent.values())
    return {
        "suite": "stages",
        "alerts": len(raw),
        "members": members,
        "batch_size": batch_size,
        "deliveries_per_alert": round(deliveries / len(raw), 2),
        "us_per_alert": us,
        "us_per_alert_total": round(total / len(raw) * 1e6, 1),
        "us_per_delivery_member_records": round(spent["member_records"] / max(deliveries, 1) * 1e6, 2),
        "alerts_per_core_s": round(len(raw) / total, 1),
    }


def _one_pass(
    settings: Settings, raw: list[Polled], index: RoutingIndex, batch_size: int
) -> tuple[collections.Counter[str], int]:
    """CPU seconds per part over every batch of `raw`, with a dedup state of its own, and the
    deliveries routed."""
    codec, feeds, limits = alert_codec(), demo_feeds(), Limits(settings.max_message_bytes)
    rules, asn = EnrichmentRules(), AsnDataset()
    records_of = MemberRecords(lambda member_id: member_topic(settings, member_id), lambda _: "json")
    state: dict[bytes | None, bytes] = {}
    spent: collections.Counter[str] = collections.Counter()
    deliveries = 0
    clock = time.process_time
    for start in range(0, len(raw), batch_size):
        t0 = clock()
        normalised = normalise_batch(
            settings, raw[start : start + batch_size], feeds, limits, datetime.now(UTC), codec, "normalised"
        )
        t1 = clock()
        messages = [
            Polled("normalised", 0, start + n, k, v, h) for n, (_, k, v, h) in enumerate(normalised.records)
        ]
        sighting = _sighting(messages, state, settings.dedup_window_seconds * 1_000_000)
        t2 = clock()
        dispatched = dispatch_batch(messages, sighting, codec, "enriched", index, rules, asn)
        t3 = clock()
        member_records, _, _ = records_of(dispatched.deliveries)
        t4 = clock()
        frame((start, dispatched.records + member_records))
        t5 = clock()
        spent["normalise"] += t1 - t0
        spent["dispatch"] += t3 - t2
        spent["member_records"] += t4 - t3
        spent["handoff"] += t5 - t4
        deliveries += len(dispatched.deliveries)
    return spent, deliveries


def _sighting(
    messages: list[Polled], state: dict[bytes | None, bytes], window_us: int
) -> Callable[[int, Alert], tuple[Seen, Verdict]]:
    def sighting(i: int, alert: Alert) -> tuple[Seen, Verdict]:
        message = messages[i]
        seen, verdict = observe_alert(state.get(message.key), alert, (0, message.offset), window_us)
        if verdict is not Verdict.REPLAY:
            state[message.key] = seen.to_bytes()
        return seen, verdict

    return sighting
