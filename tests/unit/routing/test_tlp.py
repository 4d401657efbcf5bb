"""Every TLP level against every way a member can relate to an alert."""

import ipaddress
from datetime import UTC, datetime

import pytest

from pipeline.alert import build_alert
from pipeline.directory import Constituency, Directory, Member, Subscription
from pipeline.enrich import enrich
from pipeline.routing import RoutingIndex, explain, route
from pipeline.routing.tlp import within_ceiling

NOW = datetime(2026, 11, 29, 12, tzinfo=UTC)

MEMBERS = Directory(
    [
        Member(
            id="owner",
            name="Owner",
            sectors=("energy",),
            constituency=Constituency(cidrs=(ipaddress.ip_network("10.0.0.0/16"),)),
        ),
        Member(id="addressee", name="Addressee", sectors=("health",)),
        Member(
            id="grouped",
            name="Grouped",
            sectors=("energy",),
            subscriptions=(Subscription(id="energy", sectors=("energy",)),),
        ),
        Member(
            id="named-group",
            name="Named group member",
            sectors=("health",),
            groups=("grid-isac",),
            subscriptions=(Subscription(id="all"),),
        ),
        Member(
            id="subscriber",
            name="Subscriber",
            sectors=("health",),
            subscriptions=(Subscription(id="energy", sectors=("energy",)),),
        ),
        Member(
            id="bystander",
            name="Bystander",
            sectors=("health",),
            subscriptions=(Subscription(id="transport", sectors=("transport",)),),
        ),
    ]
)
INDEX = RoutingIndex(MEMBERS)

#: member -> the TLP levels at which it receives the alert below.
EXPECTED = {
    "owner": {"CLEAR", "GREEN", "AMBER", "AMBER+STRICT"},
    "addressee": {"CLEAR", "GREEN", "AMBER", "AMBER+STRICT", "RED"},
    "grouped": {"CLEAR", "GREEN", "AMBER"},
    "named-group": {"CLEAR", "GREEN", "AMBER"},
    "subscriber": {"CLEAR", "GREEN"},
    "bystander": set(),
}


def alert(tlp: str) -> dict:
    data = {
        "time_observation": "2026-11-29T11:00:00Z",
        "feed": {"provider": "cert", "name": "ids"},
        "taxonomy": "intrusion-attempts",
        "type": "exploit",
        "tlp": tlp,
        "source": {"ip": "10.0.3.4"},
        "recipients": ["addressee"],
        "sharing_groups": ["sector:energy", "grid-isac"],
    }
    return enrich(build_alert(data, now=NOW), INDEX)


@pytest.mark.parametrize("tlp", ["CLEAR", "GREEN", "AMBER", "AMBER+STRICT", "RED"])
@pytest.mark.parametrize("member_id", sorted(EXPECTED))
def test_tlp_table(tlp, member_id):
    receivers = {d.member_id for d in route(alert(tlp), INDEX)}
    assert (member_id in receivers) == (tlp in EXPECTED[member_id])


@pytest.mark.parametrize("tlp", ["CLEAR", "GREEN", "AMBER", "AMBER+STRICT", "RED"])
def test_rules_and_reasons(tlp):
    decisions = {d.member_id: d for d in explain(alert(tlp), INDEX)}
    assert decisions["addressee"].rule == "recipient"
    if tlp != "RED":
        assert decisions["owner"].rule == "inside"
    else:
        assert decisions["owner"].reason.startswith("tlp: RED")
    assert "transport not concerned" in decisions["bystander"].reason or decisions[
        "bystander"
    ].reason.startswith("tlp")
    if tlp == "AMBER":
        assert decisions["subscriber"].reason.startswith("tlp: AMBER goes only")
        assert decisions["named-group"].rule == "subscription:all"
    if tlp == "AMBER+STRICT":
        assert decisions["grouped"].reason.startswith("tlp: AMBER+STRICT")


def test_white_is_clear():
    assert alert("WHITE")["tlp"] == "CLEAR"


def test_removed_recipient_receives_nothing():
    data = alert("RED") | {"recipients": ["gone"]}
    assert route(data, INDEX) == []


def test_owner_can_opt_out_of_inside_alerts():
    member = MEMBERS.get("owner").model_copy(update={"receive_inside": False})
    index = RoutingIndex(Directory([member]))
    decisions = explain(alert("AMBER"), index)
    assert not decisions[0].receives
    assert decisions[0].reason == "subscription: it has none"


@pytest.mark.parametrize(
    ("tlp", "ceiling", "ok"),
    [("GREEN", "GREEN", True), ("AMBER", "GREEN", False), ("RED", "RED", True), ("CLEAR", "AMBER", True)],
)
def test_ceiling(tlp, ceiling, ok):
    assert within_ceiling(tlp, ceiling) is ok
