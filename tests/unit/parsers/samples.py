"""Sample files of each format (tests/samples/<format>/), parsed with the example feed registry."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

from pipeline.feeds import FeedRegistry, load_feeds
from pipeline.parsers import PARSERS, ParseContext, Parsed

ROOT = Path(__file__).resolve().parents[3]
SAMPLES = ROOT / "tests" / "samples"
NOW = datetime(2026, 11, 29, 12, tzinfo=UTC)


@cache
def registry() -> FeedRegistry:
    return load_feeds((ROOT / "feeds.yaml").read_text())


def context(feed: str) -> ParseContext:
    spec = registry().get(feed)
    assert spec is not None, feed
    return ParseContext.of(spec, NOW)


def parse_sample(feed: str, name: str) -> Parsed:
    """Parse one sample file as a record of `feed` (the format is the feed's)."""
    ctx = context(feed)
    assert ctx.spec is not None
    return PARSERS[ctx.spec.format]((SAMPLES / ctx.spec.format / name).read_bytes(), ctx)


def indicators(alert: dict) -> list[tuple[str, str]]:
    return [(i["type"], i["value"]) for i in alert["indicators"]]


def rejections(parsed: Parsed) -> list[tuple[str, str]]:
    return [(r.item, r.field) for r in parsed.rejected]


_ISO = re.compile(rb"(\d{4}-\d{2}-\d{2})([T ])(\d{2}:\d{2}:\d{2})(\.\d+)?")
_CEF_TIME = re.compile(rb"\b([A-Z][a-z]{2} \d{2} \d{4} \d{2}:\d{2}:\d{2})\b")
_EPOCH = re.compile(rb"\b(1[78]\d{8})(\d{3})?\b")


def shift_times(data: bytes, delta: timedelta) -> bytes:
    """The sample with every time in it (RFC 3339, CEF `MMM dd yyyy HH:mm:ss`, epoch seconds and
    milliseconds) moved by `delta`, so samples written for NOW can be sent at any time."""

    def iso(match: re.Match[bytes]) -> bytes:
        moment = datetime.fromisoformat(f"{match[1].decode()}T{match[3].decode()}") + delta
        fraction = match[4] or b""
        return (
            moment.strftime("%Y-%m-%d").encode() + match[2] + moment.strftime("%H:%M:%S").encode() + fraction
        )

    def cef(match: re.Match[bytes]) -> bytes:
        return (
            (datetime.strptime(match[1].decode(), "%b %d %Y %H:%M:%S") + delta)
            .strftime("%b %d %Y %H:%M:%S")
            .encode()
        )

    def epoch(match: re.Match[bytes]) -> bytes:
        seconds = int(match[1]) + int(delta.total_seconds())
        return str(seconds).encode() + (match[2] or b"")

    return _EPOCH.sub(epoch, _CEF_TIME.sub(cef, _ISO.sub(iso, data)))
