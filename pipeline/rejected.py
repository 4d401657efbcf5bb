"""The one error a record can earn: which field, what is wrong, from which feed, and where."""

from __future__ import annotations


class Rejected(ValueError):
    """A record (or one item of it) that cannot become an alert.

    `field` is the alert field or input field that is wrong, `reason` what is wrong with it,
    `feed` the feed that sent it and `item` where in the record it is (`line 3`,
    `objects[4]`, `Attribute[12]`) when the record holds several items.
    """

    def __init__(self, field: str, reason: str, feed: str = "", item: str = "") -> None:
        where = f"{item}: " if item else ""
        super().__init__(f"{where}{field}: {reason}" + (f" (feed {feed})" if feed else ""))
        self.field = field
        self.reason = reason
        self.feed = feed
        self.item = item

    def with_feed(self, feed: str) -> Rejected:
        return Rejected(self.field, self.reason, feed, self.item)

    def at(self, item: str) -> Rejected:
        """The same rejection, located at `item` within its record."""
        return Rejected(self.field, self.reason, self.feed, item)

    def as_dict(self) -> dict[str, str]:
        return {"item": self.item, "field": self.field, "reason": self.reason, "feed": self.feed}
