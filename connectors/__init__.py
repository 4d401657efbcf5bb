"""Delivery connectors: how routed alerts reach members' systems.

Connectors meet the pipeline only through member topics and the alert schema; they never
import the agents.
"""
