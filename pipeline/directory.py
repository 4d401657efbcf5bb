"""The member directory: members, their constituency and their subscriptions.

Typed, frozen and strict: a YAML key that is not part of the model is an error naming it. The
directory as a whole is validated too: duplicate ids and overlapping constituencies (a network,
ASN or domain claimed by two members) are reported, never resolved silently, because an
overlap would send one member's "inside" alerts to another.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pipeline.alert import RSIT, SECTORS, SEVERITIES
from pipeline.observables import digits

MemberId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
Sector = Literal[SECTORS]  # type: ignore[valid-type]
Severity = Literal[SEVERITIES]  # type: ignore[valid-type]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Constituency(_Model):
    """What a member owns: alerts involving these are "inside" alerts for it."""

    cidrs: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    asns: tuple[Annotated[int, Field(ge=1, le=4_294_967_295)], ...] = ()
    domains: tuple[str, ...] = ()

    @field_validator("domains")
    @classmethod
    def _canonical_domains(cls, domains: tuple[str, ...]) -> tuple[str, ...]:
        out = []
        for domain in domains:
            name = domain.strip().lower().rstrip(".")
            if not name or " " in name or "." not in name:
                raise ValueError(f"not a domain name: {domain!r}")
            out.append(name.encode("idna").decode("ascii"))
        return tuple(out)


class Contact(_Model):
    name: str = ""
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")
    role: str = "security"


class Subscription(_Model):
    """One interest of a member; empty lists mean "any"."""

    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
    sectors: tuple[Sector, ...] = ()
    taxonomies: tuple[str, ...] = Field(
        default=(), description="RSIT classes, or class/type pairs, for example fraud/phishing."
    )
    min_severity: Severity = "info"
    min_confidence: Annotated[int, Field(ge=0, le=100)] = 0
    feeds: tuple[str, ...] = Field(default=(), description="provider/name of feeds.")
    indicator_types: tuple[str, ...] = ()
    inside_only: bool = False

    @field_validator("taxonomies")
    @classmethod
    def _known_taxonomy(cls, taxonomies: tuple[str, ...]) -> tuple[str, ...]:
        for entry in taxonomies:
            klass, _, kind = entry.partition("/")
            if klass not in RSIT or (kind and kind not in RSIT[klass]):
                raise ValueError(f"{entry!r} is not an RSIT class or class/type")
        return taxonomies


TargetId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
Tlp = Literal["CLEAR", "GREEN", "AMBER", "AMBER+STRICT", "RED"]
#: How a target is reached; the member's own Kafka topic needs no target (it is always there).
TargetType = Literal["webhook", "syslog", "email", "taxii", "file"]


class Target(_Model):
    """One way the network delivers to a member besides its own topic.

    `tlp_ceiling` is the most restrictive label the target may carry: a mailbox read by an
    outsourced SOC may take GREEN but not AMBER. Secrets are never in the directory, only the
    name of the secret that holds them (`secret_ref`), resolved where the connector runs.
    `public` marks a target that publishes what it receives (TLP:GREEN never goes there).
    """

    id: TargetId
    type: TargetType
    endpoint: str = Field(min_length=1, max_length=2048, description="URL, host:port, address or path.")
    tlp_ceiling: Tlp = "AMBER"
    secret_ref: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,128}$")
    batch_size: Annotated[int, Field(ge=1, le=10_000)] = 100
    format: Literal["json", "cef", "stix"] = "json"
    public: bool = False

    @field_validator("endpoint")
    @classmethod
    def _endpoint_shape(cls, endpoint: str, info: Any) -> str:
        kind = info.data.get("type")
        if kind in ("webhook", "taxii") and not endpoint.startswith("https://"):
            raise ValueError(f"a {kind} endpoint must be an https:// URL, got {endpoint[:64]!r}")
        if kind == "email" and "@" not in endpoint:
            raise ValueError(f"an email target needs an address, got {endpoint[:64]!r}")
        if kind == "syslog" and not digits(endpoint.rpartition(":")[2]):
            raise ValueError(f"a syslog target is host:port, got {endpoint[:64]!r}")
        return endpoint


class Member(_Model):
    """A connected organisation."""

    id: MemberId
    name: str
    sectors: tuple[Sector, ...] = ()
    constituency: Constituency = Constituency()
    contacts: tuple[Contact, ...] = ()
    groups: tuple[str, ...] = Field(default=(), description="Named sharing groups it belongs to.")
    receive_inside: bool = Field(default=True, description="Inside alerts reach it by default.")
    delivery_format: Literal["json", "avro"] = "json"
    targets: tuple[Target, ...] = Field(default=(), description="Delivery targets besides its topic.")
    subscriptions: tuple[Subscription, ...] = ()

    @field_validator("targets")
    @classmethod
    def _unique_targets(cls, targets: tuple[Target, ...]) -> tuple[Target, ...]:
        ids = [t.id for t in targets]
        duplicated = sorted({i for i in ids if ids.count(i) > 1})
        if duplicated:
            raise ValueError(f"target ids must be unique: {', '.join(duplicated)}")
        return targets

    def without_subscriptions(self) -> Member:
        return self.model_copy(update={"subscriptions": ()})


class DirectoryError(ValueError):
    """A directory that must not be loaded, with every problem found."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class Directory:
    """An immutable, validated set of members, looked up by id."""

    def __init__(self, members: Iterable[Member]) -> None:
        self.members: dict[str, Member] = {}
        problems = []
        for member in members:
            if member.id in self.members:
                problems.append(f"member {member.id}: duplicate id")
            self.members[member.id] = member
        problems += _overlaps(self.members.values())
        if problems:
            raise DirectoryError(problems)

    def __len__(self) -> int:
        return len(self.members)

    def __iter__(self) -> Any:
        return iter(self.members.values())

    def get(self, member_id: str) -> Member | None:
        return self.members.get(member_id)


def _overlaps(members: Iterable[Member]) -> list[str]:
    problems: list[str] = []
    networks = sorted(
        (
            (net.version, net.network_address, net.broadcast_address, m.id, net)
            for m in members
            for net in m.constituency.cidrs
        ),
        key=lambda t: (t[0], t[1], t[2]),
    )
    widest: tuple[Any, ...] | None = None
    for entry in networks:
        if widest and widest[0] == entry[0] and entry[1] <= widest[2] and widest[3] != entry[3]:
            problems.append(f"network {entry[4]} of {entry[3]} overlaps {widest[4]} of {widest[3]}")
        if widest is None or widest[0] != entry[0] or entry[2] > widest[2]:
            widest = entry
    owners: dict[Any, str] = {}
    for member in members:
        for asn in member.constituency.asns:
            if owners.setdefault(("asn", asn), member.id) != member.id:
                problems.append(f"AS{asn} of {member.id} is also claimed by {owners[('asn', asn)]}")
        for domain in member.constituency.domains:
            if owners.setdefault(("dns", domain), member.id) != member.id:
                problems.append(
                    f"domain {domain} of {member.id} is also claimed by {owners[('dns', domain)]}"
                )
    domains = {d: owner for (kind, d), owner in owners.items() if kind == "dns"}
    for domain, owner in domains.items():
        labels = domain.split(".")
        for i in range(1, len(labels) - 1):
            parent = ".".join(labels[i:])
            if parent in domains and domains[parent] != owner:
                problems.append(f"domain {domain} of {owner} lies under {parent} of {domains[parent]}")
    return problems


def parse_members(data: Any, source: str = "directory") -> list[Member]:
    """Read the `members:` list of a directory document; errors name the member and the key."""
    if not isinstance(data, Mapping) or not isinstance(data.get("members"), list):
        raise DirectoryError([f"{source}: expected a mapping with a 'members' list"])
    members, problems = [], []
    for index, entry in enumerate(data["members"]):
        label = entry.get("id", f"#{index}") if isinstance(entry, Mapping) else f"#{index}"
        try:
            members.append(Member.model_validate(entry))
        except ValidationError as exc:
            for error in exc.errors():
                where = ".".join(str(p) for p in error["loc"])
                problems.append(f"{source}: member {label}: {where}: {error['msg']}")
    if problems:
        raise DirectoryError(problems)
    return members


def load_directory(text: str, source: str = "directory") -> Directory:
    """Parse and validate a YAML directory document."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DirectoryError([f"{source}: not valid YAML: {exc}"]) from exc
    return Directory(parse_members(data, source))


def dump_directory(members: Iterable[Member]) -> str:
    """Write members as a YAML directory document that `load_directory` reads back."""
    docs = [m.model_dump(mode="json", exclude_defaults=True) for m in members]
    return yaml.safe_dump({"members": docs}, sort_keys=False, allow_unicode=True)


_WORDS = (
    "Nord",
    "Sud",
    "Central",
    "Metro",
    "Coastal",
    "Valley",
    "Alpine",
    "River",
    "Capital",
    "Eastern",
    "Western",
    "Lake",
    "Harbour",
    "Forest",
    "Plain",
    "Highland",
)
_KINDS = {
    "energy": ("Power", "Grid", "Gas Networks", "Energie"),
    "transport": ("Rail", "Airport", "Ports Authority", "Transit"),
    "banking": ("Bank", "Savings Bank", "Credit Union"),
    "financial-market-infrastructure": ("Clearing House", "Exchange"),
    "health": ("Hospital", "Clinic Group", "Health Trust", "Laboratories"),
    "drinking-water": ("Water", "Waterworks"),
    "waste-water": ("Sewerage", "Water Treatment"),
    "digital-infrastructure": ("DNS Registry", "Datacenter", "IX", "Cloud"),
    "ict-service-management": ("Managed Services", "IT Services"),
    "public-administration": ("Ministry", "City Council", "Regional Authority", "Agency"),
    "space": ("Space Operations",),
    "postal-and-courier": ("Post", "Courier"),
    "waste-management": ("Waste Services",),
    "chemicals": ("Chemicals",),
    "food": ("Foods", "Dairy"),
    "manufacturing": ("Manufacturing", "Medical Devices", "Automotive"),
    "digital-providers": ("Marketplace", "Search", "Social Network"),
    "research": ("University", "Research Institute"),
}
#: Rough weights: many public administrations, hospitals and energy firms, few space operators.
_SECTOR_WEIGHTS = {
    "public-administration": 14,
    "health": 12,
    "energy": 10,
    "transport": 8,
    "banking": 7,
    "digital-infrastructure": 7,
    "drinking-water": 6,
    "manufacturing": 6,
    "ict-service-management": 5,
    "research": 5,
    "waste-water": 4,
    "food": 4,
    "financial-market-infrastructure": 2,
    "postal-and-courier": 2,
    "waste-management": 2,
    "chemicals": 3,
    "digital-providers": 2,
    "space": 1,
}


def generate_members(count: int, seed: int = 2026) -> list[Member]:
    """A realistic synthetic directory: NIS2 sectors, disjoint constituencies, 2-4 subscriptions.

    Member n owns the IPv4 /24 number n counted from 11.0.0.0, the IPv6 /48 number n under the
    documentation prefix 2001:db8::/32, the domain m<n>.example, and (one member in three) a
    private-use 4-byte ASN. Deterministic for a given seed.
    """
    if not 1 <= count <= 60_000:
        raise ValueError("count must be between 1 and 60000")
    rng = random.Random(seed)
    sectors = list(_SECTOR_WEIGHTS)
    weights = list(_SECTOR_WEIGHTS.values())
    members = []
    for n in range(count):
        sector = rng.choices(sectors, weights)[0]
        own = [sector]
        if rng.random() < 0.1:
            other = rng.choices(sectors, weights)[0]
            if other != sector:
                own.append(other)
        name = f"{rng.choice(_WORDS)} {rng.choice(_KINDS[sector])} {n + 1}"
        member_id = f"m{n + 1:05d}"
        v4 = ipaddress.IPv4Network((int(ipaddress.IPv4Address("11.0.0.0")) + (n << 8), 24))
        v6 = ipaddress.IPv6Network((int(ipaddress.IPv6Address("2001:db8::")) + (n << 80), 48))
        asns = (4_200_000_000 + n,) if n % 3 == 0 else ()
        subs = [Subscription(id="inside", inside_only=True, min_severity="low")]
        subs.append(
            Subscription(
                id="sector",
                sectors=tuple(own),
                min_severity="medium",
                min_confidence=rng.choice((0, 30, 50, 70)),
            )
        )
        if rng.random() < 0.3:
            subs.append(Subscription(id="critical", min_severity="critical", min_confidence=80))
        if sector in ("banking", "financial-market-infrastructure") or rng.random() < 0.1:
            subs.append(
                Subscription(
                    id="phishing", taxonomies=("fraud/phishing",), sectors=tuple(own), min_severity="low"
                )
            )
        members.append(
            Member(
                id=member_id,
                name=name,
                sectors=tuple(own),
                constituency=Constituency(cidrs=(v4, v6), asns=asns, domains=(f"{member_id}.example",)),
                contacts=(Contact(name="SOC", email=f"soc@{member_id}.example"),),
                subscriptions=tuple(subs),
            )
        )
    return members
