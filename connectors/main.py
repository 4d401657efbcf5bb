"""Runs one connector kind as a process: settings, metrics endpoint, directory view, runner."""

from __future__ import annotations

import asyncio
import signal

from prometheus_client import CollectorRegistry, start_http_server

from connectors.kinds import KINDS
from connectors.metrics import create_connector_metrics
from connectors.runner import Runner, group_id
from connectors.secrets import SecretStore
from connectors.settings import ConnectSettings
from pipeline import __version__
from pipeline.control import DirectoryView
from pipeline.lag import LagMonitor
from pipeline.metrics import register_runtime_metrics
from pipeline.process import settle_heap, start_process
from pipeline.settings import Settings


def check_targets(kind_name: str, settings: ConnectSettings, directory: object) -> list[str]:
    """Every target of this kind that could not be served, as messages naming it."""
    kind = KINDS[kind_name](settings, SecretStore(settings.secrets_dir))
    problems = []
    for member in directory:  # type: ignore[attr-defined]
        for target in member.targets:
            if target.type == kind_name:
                try:
                    kind.connector(member, target)
                except ValueError as exc:
                    problems.append(str(exc))
    return problems


def run_connector(kind_name: str, settings: Settings, connect: ConnectSettings) -> None:
    """Serve `kind_name` until SIGTERM or SIGINT; then finish quick sends, commit and stop."""
    start_process(settings)
    registry = CollectorRegistry()
    metrics = create_connector_metrics(registry, __version__)
    register_runtime_metrics(registry)
    if settings.metrics_port:
        start_http_server(settings.metrics_port, registry=registry)
    directory = DirectoryView(settings)
    directory.on_failure = metrics.control_read_failures.inc
    directory.start().require_ready(60)
    kind = KINDS[kind_name](connect, SecretStore(connect.secrets_dir))
    runner = Runner(kind, settings, connect, metrics, directory)
    lag = LagMonitor(settings, group_id(settings, kind_name), runner.topics, metrics.consumer_lag).start()
    settle_heap()

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await runner.run(stop)

    try:
        asyncio.run(main())
    finally:
        lag.stop()
        directory.stop()
