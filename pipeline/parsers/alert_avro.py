"""Native alert Avro in single-object encoding, re-checked as strictly as JSON input."""

from __future__ import annotations

from pipeline.parsers.base import ParseContext, Parsed, build
from pipeline.rejected import Rejected
from pipeline.serde import SerdeError, alert_codec


def parse(payload: bytes, context: ParseContext) -> Parsed:
    """Decode one Avro alert; a producer's Avro is validated like JSON, never trusted as is."""
    try:
        data = alert_codec().decode(payload)
    except SerdeError as exc:
        raise Rejected("payload", str(exc)) from exc
    return Parsed(alerts=[build(data, context, payload)])
