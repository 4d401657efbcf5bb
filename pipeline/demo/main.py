"""`cwn demo`: a local broker, the members, a worker and the sample feed, with live counts."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from rich.console import Console
from rich.live import Live
from rich.table import Table

from pipeline.broker import LocalBroker
from pipeline.control import publish_feeds, publish_members
from pipeline.demo.feed import SampleFeed, demo_feeds
from pipeline.demo.run import Counts, Worker, cleanup_namespace, produce_feed, running_workers, wait_settled
from pipeline.directory import Directory, generate_members
from pipeline.kafka import ensure_topics, wait_for_cluster
from pipeline.settings import Settings
from pipeline.topics import pipeline_topics

DEMO_PREFIX = "demo-"


@dataclass(frozen=True)
class DemoOptions:
    alerts: int = 5000
    members: int = 1152
    workers: int = 1
    follow: bool = False
    keep: bool = False
    timeout: float = 600.0


@contextlib.contextmanager
def local_broker(settings: Settings, say: Callable[[str], None]) -> Iterator[None]:
    """Use the cluster `KAFKA_BOOTSTRAP` names, or start the local broker (and stop it if we did)."""
    if os.environ.get("KAFKA_BOOTSTRAP") or os.environ.get("CWN_BOOTSTRAP"):
        wait_for_cluster(settings)
        yield
        return
    broker = LocalBroker.from_settings(settings)
    started = broker.pid() is None
    if started:
        say(f"Starting the local Kafka broker on {broker.bootstrap} (first run downloads its jars)...")
    broker.up()
    try:
        yield
    finally:
        if started:
            say("Stopping the local Kafka broker...")
            broker.down()


def run_demo(base: Settings, options: DemoOptions, console: Console, quiet: bool) -> Counts:
    """Run the demo end to end and return its accounting."""

    def say(text: str) -> None:
        if not quiet:
            console.print(text)

    settings = base.model_copy(update={"namespace": base.namespace or f"{DEMO_PREFIX}{int(time.time())}"})
    with local_broker(settings, say):
        if settings.namespace.startswith(DEMO_PREFIX):
            cleanup_namespace(settings, DEMO_PREFIX)
        ensure_topics(settings, pipeline_topics(settings))
        directory = Directory(generate_members(options.members))
        say(f"Importing {len(directory)} members and creating their topics...")
        publish_members(settings, directory)
        publish_feeds(settings, demo_feeds())
        try:
            with running_workers(settings, options.workers, "w", keep=options.keep) as workers:
                feed = SampleFeed(list(directory), max_message_bytes=settings.max_message_bytes)
                records = feed.records(options.alerts)
                say(f"Replaying {len(records)} sample records (30% duplicates, 1% bad) into the raw topic...")
                produced = produce_feed(settings, records)
                if quiet:
                    return wait_settled(settings, workers, directory, produced, options.timeout)
                return _watch(settings, workers, directory, feed, produced, options, console)
        finally:
            if not options.keep:
                cleanup_namespace(settings, settings.namespace + ".")


def _watch(
    settings: Settings,
    workers: list[Worker],
    directory: Directory,
    feed: SampleFeed,
    produced: int,
    options: DemoOptions,
    console: Console,
) -> Counts:
    counts = Counts()
    stop = False

    def interrupt(*_: object) -> None:
        nonlocal stop
        stop = True

    previous = signal.signal(signal.SIGINT, interrupt)
    try:
        with Live(_table(counts, settings, "starting"), console=console, refresh_per_second=4) as live:

            def show(current: Counts) -> None:
                live.update(_table(current, settings, "running" if not stop else "stopping"))

            while True:
                counts = wait_settled(settings, workers, directory, produced, options.timeout, show)
                live.update(_table(counts, settings, "settled"))
                if not options.follow or stop:
                    break
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline and not stop:
                    time.sleep(0.2)
                if stop:
                    break
                produced += produce_feed(settings, feed.records(1000))
    finally:
        signal.signal(signal.SIGINT, previous)
    return counts


def _table(counts: Counts, settings: Settings, state: str) -> Table:
    table = Table(title=f"CWN alert pipeline demo ({settings.namespace}): {state}", min_width=60)
    table.add_column("stage")
    table.add_column("records", justify="right")
    rows = [
        ("ingested (raw topic)", counts.ingested),
        ("raw records accepted", counts.accepted),
        ("raw records skipped", counts.skipped),
        ("raw records rejected", counts.rejected),
        ("alerts normalised", counts.normalised),
        ("dead-lettered (bad input)", counts.deadlettered),
        ("duplicates dropped", counts.duplicates),
        ("unique", counts.unique),
        ("enriched", counts.enriched),
        ("member deliveries", counts.deliveries),
        ("lost", counts.lost),
    ]
    for name, value in rows:
        table.add_row(name, f"{value:,}")
    table.caption = "Ctrl-C stops the demo" if state != "settled" else "all stages caught up; Ctrl-C stops"
    return table
