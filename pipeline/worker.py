"""Runs one pipeline worker: metrics endpoint, directory view, and the Faust app (at least once) or
the transactional loops (exactly once)."""

from __future__ import annotations

import faulthandler
import logging
import os
import signal
import threading
import time
from collections.abc import Callable

import faust
from prometheus_client import CollectorRegistry, start_http_server

from pipeline import __version__, diagnostics
from pipeline.agents import fatal
from pipeline.app import create_app
from pipeline.control import DirectoryView
from pipeline.kafka import list_topics
from pipeline.lag import LagMonitor, Partition, Progress
from pipeline.metrics import Metrics, create_metrics, register_child_metrics, register_runtime_metrics
from pipeline.process import settle_heap, start_process
from pipeline.producer import AsyncProducer, BatchWriter
from pipeline.settings import Settings
from pipeline.topics import ENRICHED, NORMALISED, RAW, member_topic_prefix, partner_topics_prefix
from pipeline.transactional import run_loops, stage_loops
from pipeline.writer_process import ProcessProducer

log = logging.getLogger(__name__)

#: Seconds between two measurements of the workers' consumer lag.
_LAG_INTERVAL = 10.0


def run_worker(settings: Settings) -> None:
    """Start a worker and block until it is stopped (SIGTERM or SIGINT stop it cleanly)."""
    # `kill -USR1 <pid>` writes every thread's stack to the log: the first look at a stuck worker.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    start_process(settings)
    registry = CollectorRegistry()
    metrics = create_metrics(registry, __version__)
    register_runtime_metrics(registry)
    if settings.metrics_port:
        start_http_server(settings.metrics_port, registry=registry)
    directory = DirectoryView(settings)

    def on_directory_change() -> None:
        metrics.directory_members.set(len(directory.index.directory))
        metrics.directory_version.set(directory.version)
        settle_heap()

    directory.on_change = on_directory_change
    directory.on_failure = metrics.control_read_failures.inc
    directory.start()
    inputs = [settings.topic(RAW), settings.topic(NORMALISED)]
    partner_prefix = partner_topics_prefix(settings)
    lag = LagMonitor(
        settings, settings.group_id, lambda: inputs, metrics.consumer_lag, _LAG_INTERVAL, (partner_prefix,)
    ).start()
    if settings.processing_guarantee == "exactly_once":
        try:
            _run_transactional(settings, metrics, directory)
        finally:
            lag.stop()
            directory.stop()
        return
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    writer = routing_producer(settings)
    if isinstance(writer, ProcessProducer):
        register_child_metrics(registry, "writer", lambda: writer.pid)
    producers = (AsyncProducer(settings), writer)
    partner_topics = list_topics(settings, partner_prefix)
    app = create_app(settings, metrics, directory, producers, partner_topics)
    unread = watch_unread(
        partner_prefix,
        set(partner_topics),
        metrics.unread_topics.set,
        stop_self if settings.restart_for_new_topics else None,
    )
    progress = watch_progress(settings, lambda: registry.get_sample_value("cwn_worker_ready") == 1, app)

    def on_measure(measured: dict[Partition, tuple[int, int]]) -> None:
        unread(measured)
        progress(measured)

    lag.on_measure = on_measure
    worker = faust.Worker(
        app,
        loglevel=settings.log_level,
        quiet=True,
        redirect_stdouts=False,
        override_logging=False,
    )
    # The heap is settled once the app reports ready (`create_app`), when what start-up builds
    # exists: settling here as well would be one more full collection for nothing.
    try:
        worker.execute_from_commandline()
    finally:
        for producer in producers:
            producer.close()
        lag.stop()
        directory.stop()


def routing_producer(settings: Settings) -> BatchWriter:
    """The routing stage's writer of the audit stream and the member topics."""
    if settings.member_topic_writer == "process":
        return ProcessProducer(settings, warm=(member_topic_prefix(settings), settings.topic(ENRICHED)))
    return AsyncProducer(settings, clients=settings.member_topic_clients)


def watch_progress(
    settings: Settings, ready: Callable[[], bool], app: faust.App
) -> Callable[[dict[Partition, tuple[int, int]]], None]:
    """What to do with each lag measurement at least once: end the worker (exit 70, for its
    orchestrator to restart it) when a partition it holds has had records waiting, and no new
    commit, for `stall_seconds` while it reported ready.

    A worker can hold its partitions and process nothing (README, known limitations); Faust
    has no watchdog of its own, and nothing is lost by a restart: processing resumes from the
    last commit.
    """
    progress = Progress(settings.stall_seconds, gap=3 * _LAG_INTERVAL)

    def held() -> set[Partition]:
        try:
            return {(tp.topic, tp.partition) for tp in app.consumer.assignment()}
        except RuntimeError:  # the assignment changed while being read: judge nothing this time
            return set()

    def on_measure(measured: dict[Partition, tuple[int, int]]) -> None:
        stalled = progress.observe(time.monotonic(), measured, held() if ready() else set())
        if stalled:
            faulthandler.dump_traceback(all_threads=True)
            diagnostics.dump_from_thread()  # the tasks' waits and the consumer's partition states
            waits = ", ".join(f"{t}[{p}] {s:.0f}s" for (t, p), s in sorted(stalled.items()))
            fatal(f"records wait with no commit on partitions this worker holds: {waits}")

    return on_measure


def watch_unread(
    prefix: str, read: set[str], count: Callable[[int], None], restart: Callable[[], None] | None = None
) -> Callable[[dict[Partition, tuple[int, int]]], None]:
    """What to do with each lag measurement at least once: count the producers' own topics
    (names starting with `prefix`) the measurement found that this worker does not `read`,
    log each such topic once, and call `restart` (if given) once, the first time there is one.

    Faust subscribes to the topics that exist when the worker starts, so a producer's topic
    made later (`cwn feeds import`) waits for the next restart; its records are kept, and
    show as lag on that topic, but nothing reads them until then. A restarted worker lists the
    topics again, so it reads the new one, and does not restart for it again.
    """
    warned: set[str] = set()
    restarting = False
    remedy = (
        "Stopping the worker: its restart reads them."
        if restart is not None
        else "Restart the workers to read it (the Helm chart rolls them when its feeds change)."
    )

    def on_measure(measured: dict[Partition, tuple[int, int]]) -> None:
        nonlocal restarting
        unread = {topic for topic, _ in measured if topic.startswith(prefix) and topic not in read}
        count(len(unread))
        for topic in sorted(unread - warned):
            log.warning(
                "Records on %s are not read by this worker: the topic was made after it started. %s",
                topic,
                remedy,
            )
        warned.update(unread)
        if unread and restart is not None and not restarting:
            restarting = True
            restart()

    return on_measure


def stop_self() -> None:
    """Stop this worker cleanly, as SIGTERM from its orchestrator does: what it has read and
    written is committed, and nothing in flight is committed without its output."""
    os.kill(os.getpid(), signal.SIGTERM)


def _run_transactional(settings: Settings, metrics: Metrics, directory: DirectoryView) -> None:
    """Both stages as transactional loops (`pipeline.transactional`), until SIGTERM or SIGINT."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    loops = stage_loops(settings, metrics, directory)

    def report_readiness() -> None:
        while not stop.wait(0.5):
            ready = directory.wait_ready(0) and all(loop.ready.is_set() for loop in loops)
            metrics.ready.set(1 if ready else 0)

    threading.Thread(target=report_readiness, name="readiness", daemon=True).start()
    # Neither stage starts before the directory and the feed registry are read in full.
    while not directory.wait_ready(0.5):
        if stop.is_set():
            return
    settle_heap()
    run_loops(loops, stop, fatal)
