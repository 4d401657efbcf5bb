"""Sample files of each format (tests/samples/<format>/), parsed with the example feed registry."""

from __future__ import annotations

from datetime import UTC, datetime
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
