"""Operator diagnostics for a running worker: `kill -USR2 <pid>` logs where every task waits."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from typing import Any

log = logging.getLogger(__name__)


def await_chain(coro: Any) -> list[str]:
    """The chain of frames a coroutine is suspended in, following awaits into async generators."""
    chain = []
    seen = 0
    while coro is not None and seen < 50:
        seen += 1
        frame = (
            getattr(coro, "cr_frame", None)
            or getattr(coro, "ag_frame", None)
            or getattr(coro, "gi_frame", None)
        )
        if frame is not None:
            chain.append(f"{frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}")
        coro = (
            getattr(coro, "cr_await", None)
            or getattr(coro, "ag_await", None)
            or getattr(coro, "gi_yieldfrom", None)
        )
    return chain


def dump_tasks(app: Any) -> None:
    for task in asyncio.all_tasks():
        chain = await_chain(task.get_coro())
        log.warning("Task %s waits in:\n  %s", task.get_name(), "\n  ".join(chain))
    consumer = app.consumer
    log.warning(
        "Consumer partitions: assigned %s; active %s; paused %s; buffered %s; flow active %s",
        sorted(map(tuple, consumer.assignment())),
        sorted(map(tuple, consumer._active_partitions or ())),
        sorted(map(tuple, consumer._paused_partitions)),
        sorted(map(tuple, consumer._buffered_partitions)),
        consumer.flow_active,
    )
    bookkeeping = getattr(consumer, "bookkeeping", None)
    if bookkeeping is not None:
        for tp, state in bookkeeping().items():
            log.warning("Consumer %s[%d]: %s", tp.topic, tp.partition, state)


_installed: list[tuple[asyncio.AbstractEventLoop, Any]] = []


def install(loop: asyncio.AbstractEventLoop, app: Any) -> None:
    """Log the await chain of every task and the consumer's partition states on SIGUSR2, or
    when another thread asks (`dump_from_thread`)."""
    loop.add_signal_handler(signal.SIGUSR2, dump_tasks, app)
    _installed[:] = [(loop, app)]


def dump_from_thread(timeout: float = 2.0) -> bool:
    """From a thread other than the event loop's: have the loop log what SIGUSR2 logs, and wait
    up to `timeout` for it. False if it was not logged (nothing installed, or the loop is
    blocked or closed)."""
    if not _installed:
        return False
    loop, app = _installed[0]
    done = threading.Event()

    def dump() -> None:
        try:
            dump_tasks(app)
        finally:
            done.set()

    try:
        loop.call_soon_threadsafe(dump)
    except RuntimeError:  # the loop is closed
        return False
    return done.wait(timeout)
