"""Faust with a consumer that asks the broker for new records at most `fetch_wait_ms` ahead.

Faust creates its aiokafka consumer with a fixed 1.5 s fetch wait. aiokafka sends one fetch
per broker for the partitions that have nothing buffered; a partition that becomes fetchable
while such a fetch is held by the broker (its buffered records were just consumed) waits for
that fetch to expire. On a pipeline whose stages read each other's output, those waits add up
to half a second and more on a quiet stream. A short wait bounds them; the broker still answers
at once when records arrive.
"""

from __future__ import annotations

from typing import Any

import faust
from faust.transport.drivers import aiokafka as driver


class ConsumerThread(driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = self.app.fetch_wait_ms  # read when the fetcher starts
        return consumer


class Consumer(driver.Consumer):
    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(driver.Transport):
    Consumer = Consumer


class App(faust.App):
    """A Faust app whose worker consumer uses `fetch_wait_ms`."""

    def __init__(self, *args: Any, fetch_wait_ms: int = 20, **kwargs: Any) -> None:
        self.fetch_wait_ms = fetch_wait_ms
        super().__init__(*args, **kwargs)

    def _new_transport(self) -> Transport:
        return Transport(self.conf.broker_consumer, self)
