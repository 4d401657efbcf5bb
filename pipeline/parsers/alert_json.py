"""Native alert JSON: one object shaped like `schemas/alert.avsc`, times as RFC 3339 strings."""

from __future__ import annotations

from pipeline.alert import Alert, Rejected, build_alert
from pipeline.parsers.base import ParseContext
from pipeline.serde import SerdeError, from_json


def parse(payload: bytes, context: ParseContext) -> list[Alert]:
    """Parse one JSON alert; the `feed` field may be left out when the record's feed header names
    it as `provider/name`."""
    try:
        data = from_json(payload)
    except SerdeError as exc:
        raise Rejected("payload", str(exc)) from exc
    if not isinstance(data, dict):
        raise Rejected("payload", f"expected a JSON object, got {type(data).__name__}")
    if data.get("feed") is None and "/" in context.feed:
        provider, _, name = context.feed.partition("/")
        data["feed"] = {"provider": provider, "name": name}
    return [build_alert(data, default_tlp=context.default_tlp, now=context.now)]
