"""What every parser receives besides the payload."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class ParseContext:
    """The feed a record claims to come from, the defaults that apply to it, and the time now."""

    feed: str
    now: datetime
    default_tlp: str = "AMBER"
