"""The metric names the project exports, and those a PromQL expression uses."""

from __future__ import annotations

import re

from prometheus_client import CollectorRegistry

from connectors.metrics import create_connector_metrics
from pipeline.metrics import create_metrics


def exported() -> set[str]:
    """Every series name a worker or connector runner can expose (with `_total`, `_bucket`...)."""
    registry = CollectorRegistry()
    create_metrics(registry)
    create_connector_metrics(registry)
    return set(registry._names_to_collectors)  # the names a scrape can show, suffixes included


def used(expr: str) -> set[str]:
    return set(re.findall(r"\bcwn_[a-z0-9_]+", expr))
