"""Routing: the directory index, TLP rules, the per-member decision, route and explain."""

from pipeline.routing.index import RoutingIndex
from pipeline.routing.route import Decision, explain, route

__all__ = ["Decision", "RoutingIndex", "explain", "route"]
