"""Native alert JSON: one object shaped like `schemas/alert.avsc`, times as RFC 3339 strings."""

from __future__ import annotations

from pipeline.parsers.base import ParseContext, Parsed, build, json_object


def parse(payload: bytes, context: ParseContext) -> Parsed:
    """Parse one JSON alert; `feed` may be left out, the record's feed header names it."""
    data = json_object(payload)
    return Parsed(alerts=[build(data, context, payload)])
