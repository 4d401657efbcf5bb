"""What every long-running CWN process does first: logging, the cluster, the topics."""

from __future__ import annotations

import gc
import logging

from pipeline.kafka import TopicsRefused, ensure_topics, wait_for_cluster
from pipeline.settings import Settings
from pipeline.topics import pipeline_topics

log = logging.getLogger(__name__)


def start_process(settings: Settings) -> None:
    """Configure logging, wait for the cluster, and create the pipeline's topics when allowed.

    A least-privileged principal may not create topics; that is the administrator's job
    (`cwn topics ensure`, the chart's import Job), so a refusal is logged and the process goes on.
    """
    logging.basicConfig(
        level=settings.log_level.upper().replace("WARN", "WARNING"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    wait_for_cluster(settings)
    try:
        ensure_topics(settings, pipeline_topics(settings))
    except TopicsRefused as exc:
        log.warning("Topics are the administrator's to create (cwn topics ensure): %s", exc)


#: Allocations between two young-generation collections (CPython's default is 700).
YOUNG_COLLECTION_THRESHOLD = 50_000


def settle_heap() -> None:
    """Move what start-up built out of the collector's sight, and collect less often.

    A worker makes about fifty short-lived objects per alert (one per delivery); with
    CPython's defaults the cyclic collector runs every 700 of them and keeps re-walking
    everything start-up left behind (the app, the directory, the indexes), which cost the
    dispatch path more than half of the time it spends making deliveries. Frozen objects are
    never scanned; reference counting still frees the short-lived ones at once, so a larger
    threshold only delays reclaiming reference cycles, which the hot path does not make.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, 10, 10)
