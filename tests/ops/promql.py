"""The metric names the project exports, and those a PromQL expression uses."""

from __future__ import annotations

import os
import re

from prometheus_client import CollectorRegistry

from connectors.metrics import create_connector_metrics
from pipeline.metrics import create_metrics, register_child_metrics, register_runtime_metrics


def exported() -> set[str]:
    """Every series name a worker or connector runner can expose (with `_total`, `_bucket`...)."""
    workers, connectors, processes = CollectorRegistry(), CollectorRegistry(), CollectorRegistry()
    create_metrics(workers)
    create_connector_metrics(connectors)
    # Process metrics are read at each scrape: collect them once, from this process.
    register_runtime_metrics(processes)
    register_child_metrics(processes, "writer", os.getpid)
    collected = {sample.name for family in processes.collect() for sample in family.samples}
    # the names a scrape can show, suffixes included
    return set(workers._names_to_collectors) | set(connectors._names_to_collectors) | collected


def used(expr: str) -> set[str]:
    return set(re.findall(r"\bcwn_[a-z0-9_]+", expr))
