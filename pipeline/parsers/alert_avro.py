"""Native alert Avro in single-object encoding, re-checked as strictly as JSON input."""

from __future__ import annotations

from pipeline.alert import Alert, Rejected, build_alert
from pipeline.parsers.base import ParseContext
from pipeline.serde import SerdeError, alert_codec


def parse(payload: bytes, context: ParseContext) -> list[Alert]:
    """Decode one Avro alert; a producer's Avro is validated like JSON, never trusted as is."""
    try:
        data = alert_codec().decode(payload)
    except SerdeError as exc:
        raise Rejected("payload", str(exc)) from exc
    return [build_alert(data, default_tlp=context.default_tlp, now=context.now)]
