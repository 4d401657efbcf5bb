"""Routing: the directory index, TLP rules, the per-member decision, route and explain."""

from pipeline.routing.index import RoutingIndex
from pipeline.routing.route import Decision, Receiver, explain, receivers, route

__all__ = ["Decision", "Receiver", "RoutingIndex", "explain", "receivers", "route"]
