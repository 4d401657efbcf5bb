import asyncio
import concurrent.futures
import logging
import signal
import time
from types import SimpleNamespace

from faust.types import TP

from pipeline import diagnostics


class Consumer:
    """The consumer attributes `dump_tasks` reads, as Faust's consumer has them."""

    _active_partitions = {("raw", 0)}
    _paused_partitions = {("raw", 1)}
    _buffered_partitions: set = set()
    flow_active = True

    def assignment(self) -> set:
        return {("raw", 0), ("raw", 1)}

    def bookkeeping(self) -> dict:
        return {TP("raw", 0): {"sought": True, "committed": 7, "next": 9}}


def on_installed_loop(body) -> object:
    """Run `body(loop)` on a fresh event loop in this (the main) thread, with the diagnostics
    installed on it, as a worker's app installs them."""

    async def main() -> object:
        loop = asyncio.get_running_loop()
        diagnostics.install(loop, SimpleNamespace(consumer=Consumer()))
        return await body(loop)

    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(main())
    finally:
        loop.remove_signal_handler(signal.SIGUSR2)
        loop.close()
        diagnostics._installed.clear()


def test_another_thread_has_the_loop_log_tasks_and_partition_states(caplog):
    assert diagnostics.dump_from_thread(0.1) is False  # nothing installed

    async def ask(loop: asyncio.AbstractEventLoop) -> bool:
        return await loop.run_in_executor(None, diagnostics.dump_from_thread, 5.0)

    with caplog.at_level(logging.WARNING, logger="pipeline.diagnostics"):
        assert on_installed_loop(ask) is True
    assert "assigned [('raw', 0), ('raw', 1)]; active [('raw', 0)]; paused [('raw', 1)]" in caplog.text
    assert "Consumer raw[0]: {'sought': True, 'committed': 7, 'next': 9}" in caplog.text
    assert "waits in" in caplog.text


def test_a_blocked_loop_is_waited_for_only_so_long():
    async def block(loop: asyncio.AbstractEventLoop) -> bool:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            asked = pool.submit(diagnostics.dump_from_thread, 0.2)
            time.sleep(1.0)  # the loop is busy the whole time
            return asked.result()

    assert on_installed_loop(block) is False
