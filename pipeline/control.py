"""The control plane: members and subscriptions in compacted topics, read as a global table.

`cwn.members` holds one record per member (key: member id; value: the member as JSON, without
its subscriptions); `cwn.subscriptions` one per subscription (key: `member/subscription`);
`cwn.feeds` one per declared feed (key: feed id); `cwn.enrichment` the enrichment rules (key:
`rules`). A tombstone removes. Every worker reads the four topics whole, from every partition, into a
`DirectoryView`, and keeps reading: an import is live everywhere within the time it takes to
read one record, with no restart.

Faust's GlobalTable is not used for this: it warns of an endless recovery loop when several
workers share one, and it has no hook for "the table changed", which the router needs in order
to rebuild its index. A plain consumer without a group does both simply.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

import orjson
from confluent_kafka import KafkaException

from pipeline.asn import AsnDataset, from_chunks, parse_ip2asn, to_chunks
from pipeline.directory import Directory, DirectoryError, Member, Subscription
from pipeline.feeds import FeedRegistry, FeedsError, FeedSpec
from pipeline.kafka import assign_from_start, ensure_topics, make_producer, make_reader, watermarks
from pipeline.rejected import Rejected
from pipeline.routing.index import RoutingIndex
from pipeline.rules import EnrichmentRules, RulesError, RulesFile
from pipeline.settings import Settings
from pipeline.topics import (
    ENRICHMENT,
    FEEDS,
    MEMBERS,
    SUBSCRIPTIONS,
    member_topic_spec,
    partner_topic_specs,
    pipeline_topics,
)

log = logging.getLogger(__name__)

# After a failed read the view waits this long before reading again, doubling up to the last.
_RETRY_FIRST = 0.5
_RETRY_LAST = 30.0

ASN_MANIFEST = "asn/manifest"


class ControlState:
    """The latest record per key of the control topics, and the directory and feeds they make."""

    def __init__(self) -> None:
        self.members: dict[str, bytes] = {}
        self.subscriptions: dict[str, bytes] = {}
        self.feed_specs: dict[str, bytes] = {}
        self.enrichment: dict[str, bytes] = {}
        self._asn: AsnDataset = AsnDataset()

    def apply(self, topic_kind: str, key: bytes, value: bytes | None) -> None:
        tables = {MEMBERS: self.members, SUBSCRIPTIONS: self.subscriptions, FEEDS: self.feed_specs}
        table = tables.get(topic_kind, self.enrichment)
        name = key.decode()
        if value is None:
            table.pop(name, None)
        else:
            table[name] = value

    def directory(self) -> Directory:
        """Assemble and validate the directory; raises DirectoryError listing every problem."""
        subs: dict[str, list[Subscription]] = {}
        problems = []
        for key, value in sorted(self.subscriptions.items()):
            member_id = key.partition("/")[0]
            try:
                subs.setdefault(member_id, []).append(Subscription.model_validate_json(value))
            except ValueError as exc:
                problems.append(f"subscription {key}: {exc}")
        members = []
        for member_id, value in sorted(self.members.items()):
            try:
                member = Member.model_validate_json(value)
            except ValueError as exc:
                problems.append(f"member {member_id}: {exc}")
                continue
            members.append(member.model_copy(update={"subscriptions": tuple(subs.get(member_id, ()))}))
        if problems:
            raise DirectoryError(problems)
        return Directory(members)

    def feeds(self) -> FeedRegistry:
        """Assemble the feed registry; raises FeedsError listing every invalid declaration."""
        specs, problems = [], []
        for key, value in sorted(self.feed_specs.items()):
            try:
                specs.append(FeedSpec.model_validate_json(value))
            except ValueError as exc:
                problems.append(f"feed {key}: {exc}")
        if problems:
            raise FeedsError(problems)
        return FeedRegistry(specs)

    def asn(self) -> AsnDataset:
        """The IP-to-ASN dataset in force: rebuilt only when a complete new one has arrived."""
        manifest = self.enrichment.get(ASN_MANIFEST)
        if manifest is None:
            return self._asn
        wanted = orjson.loads(manifest)
        if wanted["sha256"] == self._asn.digest:
            return self._asn
        chunks = [self.enrichment.get(f"asn/{i}") for i in range(wanted["chunks"])]
        if any(c is None for c in chunks):
            return self._asn  # still arriving
        self._asn = parse_ip2asn(from_chunks(chunks), "the dataset in cwn.enrichment")  # type: ignore[arg-type]
        return self._asn

    def rules(self) -> EnrichmentRules:
        """The enrichment rules in force (none until imported); raises RulesError when invalid."""
        value = self.enrichment.get("rules")
        if value is None:
            return EnrichmentRules()
        try:
            return EnrichmentRules(RulesFile.model_validate_json(value))
        except ValueError as exc:
            raise RulesError([f"enrichment rules: {exc}"]) from None


class DirectoryView:
    """A live, read-only view of the directory on one worker, with its routing index.

    `wait_ready` returns once the view has read both topics up to where they ended at start, so
    no alert is routed against a partial directory. Afterwards changes apply as they arrive. An
    invalid directory (for example overlapping constituencies) is logged and the last valid
    index stays in force.

    A failed read (the cluster away, a timeout) never stops the view: it is logged and counted
    (`failures`, `failure`, `on_failure`), and the view reads again from the record after the
    last one it applied, waiting 0.5 s and doubling up to 30 s between attempts. Meanwhile the
    index in force stays, and a view not ready yet stays not ready.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._state = ControlState()
        self._index = RoutingIndex(Directory(()))
        self._feeds = FeedRegistry()
        self._rules = EnrichmentRules()
        self._asn = AsnDataset()
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="directory-view", daemon=True)
        self._positions: dict[tuple[str, int], int] = {}
        self._reading = False
        self._dirty = False  # records applied to the state but not published yet
        self.version = 0
        self.error: str | None = None
        #: Failed attempts at reading the control topics, and the last one's error.
        self.failures = 0
        self.failure: str | None = None
        #: Called from the reading thread after each change that took effect.
        self.on_change: Callable[[], None] | None = None
        #: Called from the reading thread after each failed attempt, before it waits to read again.
        self.on_failure: Callable[[], None] | None = None

    @property
    def index(self) -> RoutingIndex:
        return self._index

    @property
    def rules(self) -> EnrichmentRules:
        """The enrichment rules in force: warning lists, watch list, severity rules."""
        return self._rules

    @property
    def asn(self) -> AsnDataset:
        """The IP-to-ASN dataset in force (empty until one is loaded)."""
        return self._asn

    @property
    def feeds(self) -> FeedRegistry:
        """The feed registry in force: until the first valid one is read, no feed is known."""
        return self._feeds

    def start(self) -> DirectoryView:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def wait_ready(self, timeout: float | None = None) -> bool:
        return self._ready.wait(timeout)

    def require_ready(self, timeout: float) -> None:
        """Wait until ready; raise TimeoutError, with the last read's error, if not in `timeout` s."""
        if not self._ready.wait(timeout):
            cause = f" (last error: {self.failure})" if self.failure else ""
            raise TimeoutError(f"the control topics could not be read within {timeout:.0f}s{cause}")

    def _run(self) -> None:
        delay = _RETRY_FIRST
        while not self._stop.is_set():
            try:
                self._follow()
            except Exception as exc:  # noqa: BLE001 - any failure: the view reads again, never stops
                self.failures += 1
                self.failure = f"{type(exc).__name__}: {exc}"
                log.warning("Reading the control topics failed, again in %.1fs: %s", delay, self.failure)
                if self.on_failure is not None:
                    self.on_failure()
                if self._reading:
                    delay = _RETRY_FIRST
                self._stop.wait(delay)
                delay = min(delay * 2, _RETRY_LAST)

    def _follow(self) -> None:
        """Read the four topics from where the view stands (their start, at first) and keep
        reading until stopped; raises whatever the client raises."""
        self._reading = False
        topics = {self._settings.topic(kind): kind for kind in (MEMBERS, SUBSCRIPTIONS, FEEDS, ENRICHMENT)}
        consumer = make_reader(self._settings, **{"enable.partition.eof": True, "fetch.wait.max.ms": 100})
        try:
            edges = watermarks(self._settings, topics)
            behind = assign_from_start(consumer, topics, edges, self._positions)
            if not behind and (self._dirty or not self._ready.is_set()):
                self._publish()
            while not self._stop.is_set():
                messages = consumer.consume(5000, timeout=0.2)
                self._reading = True
                for message in messages:
                    error = message.error()
                    if error is not None:
                        if error.code() == -191:  # _PARTITION_EOF: caught up on this partition
                            behind.discard((message.topic(), message.partition()))
                            continue
                        raise KafkaException(error)
                    self._state.apply(topics[message.topic()], message.key(), message.value())
                    self._positions[(message.topic(), message.partition())] = message.offset() + 1
                    self._dirty = True
                # Caught up for the first time: publish at once. Later, wait for a quiet poll,
                # so that an import's burst of records becomes one new index, not hundreds.
                if self._dirty and not behind and (not messages or not self._ready.is_set()):
                    self._publish()
        finally:
            consumer.close()

    def _publish(self) -> None:
        self._dirty = False
        try:
            self._feeds = self._state.feeds()
        except FeedsError as exc:
            log.error("The feed registry is invalid; the previous one stays in force: %s", exc)
        try:
            self._asn = self._state.asn()
        except (Rejected, ValueError) as exc:
            log.error("The IP-to-ASN dataset is invalid; the previous one stays in force: %s", exc)
        try:
            self._rules = self._state.rules()
        except RulesError as exc:
            log.error("The enrichment rules are invalid; the previous ones stay in force: %s", exc)
        try:
            self._index = RoutingIndex(self._state.directory())
            self.version += 1
            self.error = None
            if self.on_change is not None:
                self.on_change()
        except DirectoryError as exc:
            self.error = str(exc)
            log.error("The directory is invalid; the previous one stays in force: %s", exc)
        self._ready.set()


def read_control(settings: Settings, timeout: float = 30.0) -> DirectoryView:
    """Read the control topics once (for the CLI): the view, stopped, with the directory, feeds
    and enrichment rules in force."""
    view = DirectoryView(settings).start()
    try:
        view.require_ready(timeout)
        return view
    finally:
        view.stop()


def read_directory(settings: Settings, timeout: float = 30.0) -> Directory:
    """The directory in force."""
    return read_control(settings, timeout).index.directory


def publish_members(
    settings: Settings, members: Iterable[Member], current: Directory | None = None, prune: bool = False
) -> dict[str, int]:
    """Write members and subscriptions to the control topics, creating member topics first.

    Topics come first so that a router never sees a member whose topic does not exist yet.
    With `current`, subscriptions a member no longer has are removed; with `prune`, members
    absent from `members` are removed too (their topics are kept: deleting is a policy).
    """
    members = list(members)
    ensure_topics(settings, pipeline_topics(settings))
    created = ensure_topics(settings, [member_topic_spec(settings, m.id) for m in members])
    producer = make_producer(settings)
    members_topic, subs_topic = settings.topic(MEMBERS), settings.topic(SUBSCRIPTIONS)
    removed_subs = removed_members = 0
    for member in members:
        producer.produce(members_topic, key=member.id.encode(), value=_member_json(member))
        for sub in member.subscriptions:
            producer.produce(subs_topic, key=f"{member.id}/{sub.id}".encode(), value=sub.model_dump_json())
        old = current.get(member.id) if current else None
        keep = {s.id for s in member.subscriptions}
        for sub in old.subscriptions if old else ():
            if sub.id not in keep:
                producer.produce(subs_topic, key=f"{member.id}/{sub.id}".encode(), value=None)
                removed_subs += 1
        producer.poll(0)
    if prune and current is not None:
        wanted = {m.id for m in members}
        for old in current:
            if old.id not in wanted:
                remove_member(settings, old, producer)
                removed_members += 1
    _flush(producer)
    return {
        "members": len(members),
        "subscriptions": sum(len(m.subscriptions) for m in members),
        "topics_created": len(created),
        "members_removed": removed_members,
        "subscriptions_removed": removed_subs,
    }


def publish_feeds(
    settings: Settings, feeds: FeedRegistry, current: FeedRegistry | None = None
) -> dict[str, int]:
    """Write feed declarations to `cwn.feeds`; with `current`, feeds no longer declared are removed.

    Normalisers pick the change up within seconds: a removed feed's records are dead-lettered
    from then on.
    """
    ensure_topics(settings, pipeline_topics(settings))
    # Each producer's own raw topic: on a secured broker the only one it may write.
    created = ensure_topics(settings, partner_topic_specs(settings, {p for f in feeds for p in f.producers}))
    producer = make_producer(settings)
    topic = settings.topic(FEEDS)
    for feed in feeds:
        producer.produce(topic, key=feed.id.encode(), value=feed.model_dump_json(exclude_defaults=True))
    removed = [old.id for old in current or () if feeds.get(old.id) is None]
    for feed_id in removed:
        producer.produce(topic, key=feed_id.encode(), value=None)
    _flush(producer)
    return {"feeds": len(feeds), "feeds_removed": len(removed), "partner_topics_created": len(created)}


def publish_rules(settings: Settings, rules: EnrichmentRules) -> dict[str, int]:
    """Put enrichment rules in force on every worker (they replace the previous rules whole)."""
    ensure_topics(settings, pipeline_topics(settings))
    producer = make_producer(settings)
    producer.produce(settings.topic(ENRICHMENT), key=b"rules", value=rules.rules.model_dump_json())
    _flush(producer)
    r = rules.rules
    return {
        "warninglists": len(r.warninglists),
        "watchlist": len(r.watchlist),
        "severity_rules": len(r.severity_rules),
    }


def publish_asn(settings: Settings, text: str) -> dict[str, int | str]:
    """Check an ip2asn TSV and put it in force on every worker: chunks first, the manifest last,
    so no worker ever loads half a dataset."""
    dataset = parse_ip2asn(text)
    chunks = to_chunks(text)
    ensure_topics(settings, pipeline_topics(settings))
    producer = make_producer(settings, **{"message.max.bytes": 2 * 1024 * 1024})
    topic = settings.topic(ENRICHMENT)
    for i, chunk in enumerate(chunks):
        producer.produce(topic, key=f"asn/{i}".encode(), value=chunk)
        producer.poll(0)
    _flush(producer)
    manifest = {"chunks": len(chunks), "sha256": dataset.digest, "ranges": dataset.ranges}
    producer.produce(topic, key=ASN_MANIFEST.encode(), value=orjson.dumps(manifest))
    _flush(producer)
    return manifest


def read_feeds(settings: Settings, timeout: float = 30.0) -> FeedRegistry:
    """The feed registry in force."""
    return read_control(settings, timeout).feeds


def remove_member(settings: Settings, member: Member, producer: object | None = None) -> None:
    """Tombstone a member and its subscriptions: routers stop delivering to it at once."""
    own = producer is None
    out = make_producer(settings) if own else producer
    for sub in member.subscriptions:
        out.produce(settings.topic(SUBSCRIPTIONS), key=f"{member.id}/{sub.id}".encode(), value=None)  # type: ignore[attr-defined]
    out.produce(settings.topic(MEMBERS), key=member.id.encode(), value=None)  # type: ignore[attr-defined]
    if own:
        _flush(out)


def _member_json(member: Member) -> bytes:
    return orjson.dumps(member.without_subscriptions().model_dump(mode="json", exclude_defaults=True))


def _flush(producer: object, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while producer.flush(1.0) > 0:  # type: ignore[attr-defined]
        if time.monotonic() > deadline:
            raise TimeoutError("control records were not acknowledged in time")
