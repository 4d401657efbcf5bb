"""Operator diagnostics for a running worker: `kill -USR2 <pid>` logs where every task waits."""

from __future__ import annotations

import asyncio
import logging
import signal
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


def install(loop: asyncio.AbstractEventLoop, app: Any) -> None:
    """Log the await chain of every task and the consumer's partition states on SIGUSR2."""
    loop.add_signal_handler(signal.SIGUSR2, dump_tasks, app)
