"""The metric names the project exports, and those a PromQL expression uses."""

from __future__ import annotations

import re

from prometheus_client import CollectorRegistry

from connectors.metrics import create_connector_metrics
from pipeline.metrics import create_metrics


def exported() -> set[str]:
    """Every series name a worker or connector runner can expose (with `_total`, `_bucket`...)."""
    workers, connectors = CollectorRegistry(), CollectorRegistry()
    create_metrics(workers)
    create_connector_metrics(connectors)
    # the names a scrape can show, suffixes included
    return set(workers._names_to_collectors) | set(connectors._names_to_collectors)


def used(expr: str) -> set[str]:
    return set(re.findall(r"\bcwn_[a-z0-9_]+", expr))
