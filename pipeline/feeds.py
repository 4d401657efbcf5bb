"""The feed registry: which feeds exist, what they send, and who may write them.

`feeds.yaml` declares each feed once: its id (`provider/name`, the value of the `feed` header
of every raw record), its format, the defaults its records lack (TLP, confidence, severity,
classification), the column mapping of a CSV feed, and the producer identities allowed to
write it. The normaliser dead-letters a record from a feed that is not declared, or written by
an identity the feed does not name: an unknown feed is an unknown source, and trusting it would
let anyone inject alerts into the members' SOCs.

The model is strict like the member directory: an unknown key is an error that names it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline.alert import ORIGINS, RSIT, SEVERITIES, canonical_tlp
from pipeline.rejected import Rejected

FORMATS = ("alert-json", "alert-avro", "suricata-eve", "stix2", "misp", "csv", "intelmq", "cef")
FeedId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,62}/[a-z0-9][a-z0-9._-]{0,62}$")]
Identity = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$")]

#: Alert fields a CSV column may fill (dotted for nested records, `extra.NAME` for extras).
CSV_TARGETS = (
    "time_observation",
    "time_source",
    "identifier",
    "description",
    "severity",
    "confidence",
    "taxonomy",
    "type",
    "sensor",
    "references",
    "malware.name",
    "protocol.transport",
    "protocol.application",
    *(
        f"{side}.{part}"
        for side in ("source", "destination")
        for part in ("ip", "port", "fqdn", "url", "asn", "as_name", "cc")
    ),
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CsvMapping(_Model):
    """How the columns of one CSV feed become alert fields.

    Each row is one record (a quoted cell may span lines); a row equal to the column names (a
    repeated header) and rows starting with `comment` are skipped and counted. Times without an
    offset are read as UTC with `time_format` (strptime) when given, otherwise as RFC 3339 or
    epoch seconds.
    """

    columns: tuple[str, ...] = Field(min_length=1)
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    comment: str = "#"
    fields: dict[str, str] = Field(description="alert field -> column name")
    constants: dict[str, str | int] = Field(default_factory=dict, description="alert field -> fixed value")
    indicators: dict[str, str] = Field(
        default_factory=dict, description="column name -> indicator type (ip, domain, url, sha256, ...)"
    )
    time_format: str | None = None

    @model_validator(mode="after")
    def _known_targets(self) -> CsvMapping:
        for target in [*self.fields, *self.constants]:
            if target not in CSV_TARGETS and not target.startswith("extra."):
                raise ValueError(
                    f"{target!r} is not a field a CSV column can fill; known: {', '.join(CSV_TARGETS)}"
                )
        for column in [*self.fields.values(), *self.indicators]:
            if column not in self.columns:
                raise ValueError(f"column {column!r} is mapped but not among the columns")
        return self


class FeedSpec(_Model):
    """One feed a partner sends into the network."""

    id: FeedId
    description: str = ""
    format: Literal[FORMATS]  # type: ignore[valid-type]
    producers: tuple[Identity, ...] = Field(
        min_length=1, description="Producer identities allowed to write this feed."
    )
    default_tlp: str = "AMBER"
    default_confidence: Annotated[int, Field(ge=0, le=100)] = 50
    default_severity: Literal[SEVERITIES] = "medium"  # type: ignore[valid-type]
    classification: str | None = Field(
        default=None,
        description="RSIT class/type for records whose format does not classify them (CEF, CSV, STIX).",
    )
    origin: Literal[ORIGINS] = "feed"  # type: ignore[valid-type]
    owner: str | None = Field(
        default=None,
        description="Member id of the organisation behind the feed (MISP distribution 0 goes to it only).",
    )
    keep_raw: bool = Field(
        default=False, description="Keep each record's original bytes in the alert's `raw` field."
    )
    csv: CsvMapping | None = None

    @field_validator("default_tlp")
    @classmethod
    def _tlp(cls, value: str) -> str:
        try:
            return canonical_tlp(value, "default_tlp")
        except Rejected as exc:
            raise ValueError(exc.reason) from None

    @field_validator("classification")
    @classmethod
    def _rsit(cls, value: str | None) -> str | None:
        if value is None:
            return None
        klass, _, kind = value.partition("/")
        if klass not in RSIT or kind not in RSIT[klass]:
            raise ValueError(f"{value!r} is not an RSIT class/type, for example malicious-code/c2-server")
        return value

    @model_validator(mode="after")
    def _csv_needs_mapping(self) -> FeedSpec:
        if (self.format == "csv") != (self.csv is not None):
            raise ValueError("a csv mapping is required for format csv, and only for it")
        return self

    @property
    def provider(self) -> str:
        return self.id.partition("/")[0]

    @property
    def name(self) -> str:
        return self.id.partition("/")[2]

    def allows(self, identity: str) -> bool:
        return identity in self.producers


class FeedsError(ValueError):
    """A registry that must not be loaded, with every problem found."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class FeedRegistry:
    """The declared feeds, looked up by id."""

    def __init__(self, feeds: Iterable[FeedSpec] = ()) -> None:
        self.feeds: dict[str, FeedSpec] = {}
        problems = []
        for feed in feeds:
            if feed.id in self.feeds:
                problems.append(f"feed {feed.id}: declared twice")
            self.feeds[feed.id] = feed
        if problems:
            raise FeedsError(problems)

    def __len__(self) -> int:
        return len(self.feeds)

    def __iter__(self) -> Any:
        return iter(self.feeds.values())

    def get(self, feed_id: str) -> FeedSpec | None:
        return self.feeds.get(feed_id)


def parse_feeds(data: Any, source: str = "feeds.yaml") -> FeedRegistry:
    """Validate a loaded `feeds.yaml` (`{feeds: [...]}`); raises FeedsError listing every problem."""
    if not isinstance(data, Mapping) or set(data) != {"feeds"} or not isinstance(data["feeds"], list):
        raise FeedsError([f"{source}: expected one top-level key `feeds` holding a list"])
    feeds, problems = [], []
    for i, entry in enumerate(data["feeds"]):
        try:
            feeds.append(FeedSpec.model_validate(entry))
        except ValidationError as exc:
            name = entry.get("id", f"#{i}") if isinstance(entry, Mapping) else f"#{i}"
            for error in exc.errors():
                where = ".".join(str(p) for p in error["loc"]) or "feed"
                problems.append(f"{source}: feed {name}: {where}: {error['msg']}")
    if problems:
        raise FeedsError(problems)
    return FeedRegistry(feeds)


def load_feeds(text: str, source: str = "feeds.yaml") -> FeedRegistry:
    """Read and validate `feeds.yaml` text."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise FeedsError([f"{source}: not valid YAML: {exc}"]) from None
    return parse_feeds(data, source)
