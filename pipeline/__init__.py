"""CWN alert pipeline: normalise, deduplicate, enrich and route security alerts to members."""

__version__ = "0.1.0"
