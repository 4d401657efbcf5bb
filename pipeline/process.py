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


def settle_heap() -> None:
    """Move the long-lived objects built so far out of the cyclic collector's sight.

    A worker makes about fifty short-lived objects per alert (one per delivery), so the
    collector's youngest generation runs often; each full collection then re-walked
    everything start-up left behind (the app, the directory, the indexes), a pause of both
    agents that grows with the directory. Frozen objects are never scanned. Called at start,
    again once the worker is ready (the directory, the tables and the clients are built only
    then), and after each new directory: what was frozen before is released first and
    collected with the rest, so a replaced directory's cycles are not kept for ever. Each call
    is one full collection. The thresholds stay CPython's: larger ones made each collection
    long enough to show in the latency tail (docs/performance.md).
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()
