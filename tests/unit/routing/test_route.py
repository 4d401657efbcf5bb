"""Properties of routing over generated directories and alerts."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.alert import SEVERITY_RANK
from pipeline.directory import Directory
from pipeline.enrich import enrich
from pipeline.routing import RoutingIndex, explain, receivers, route
from tests.unit.strategies import alerts, directories

IDS = tuple(f"m{n}" for n in range(6))


def may_see(tlp, member, alert):
    """TLP 2.0 as DESIGN.md states it, written independently of the router."""
    inside = member.id in alert["members_inside"]
    recipient = member.id in alert["recipients"]
    groups = set(member.groups) | {f"sector:{s}" for s in member.sectors}
    return {
        "CLEAR": True,
        "GREEN": True,
        "AMBER": inside or recipient or bool(groups & set(alert["sharing_groups"])),
        "AMBER+STRICT": inside or recipient,
        "RED": recipient,
    }[tlp]


def wants(member, alert):
    """Recipient, owner (by default) or a matching subscription, written independently."""
    inside = member.id in alert["members_inside"]
    if member.id in alert["recipients"] or (inside and member.receive_inside):
        return True
    for sub in member.subscriptions:
        kinds = {i["type"] for i in alert["indicators"]}
        if (
            (not sub.inside_only or inside)
            and (not sub.sectors or set(sub.sectors) & set(alert["sectors"]))
            and (
                not sub.taxonomies
                or alert["taxonomy"] in sub.taxonomies
                or f"{alert['taxonomy']}/{alert['type']}" in sub.taxonomies
            )
            and SEVERITY_RANK[alert["severity"]] >= SEVERITY_RANK[sub.min_severity]
            and alert["confidence"] >= sub.min_confidence
            and (not sub.feeds or f"{alert['feed']['provider']}/{alert['feed']['name']}" in sub.feeds)
            and (not sub.indicator_types or kinds & set(sub.indicator_types))
        ):
            return True
    return False


#: A thousand generated directories and alerts between the two properties, on every run.
THOUSANDS = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@THOUSANDS
@given(directories(), alerts(member_ids=IDS), st.booleans())
def test_route_delivers_exactly_what_tlp_and_subscriptions_allow(members, alert, through_enrich):
    index = RoutingIndex(Directory(members))
    if through_enrich:
        alert = enrich(alert, index)
    receivers = {d.member_id for d in route(alert, index)}
    expected = {m.id for m in members if may_see(alert["tlp"], m, alert) and wants(m, alert)}
    assert receivers == expected


@THOUSANDS
@given(directories(), alerts(member_ids=IDS))
def test_route_agrees_with_explain(members, alert):
    index = RoutingIndex(Directory(members))
    routed = route(alert, index)
    explained = [d for d in explain(alert, index) if d.receives]
    assert sorted(routed, key=lambda d: d.member_id) == sorted(explained, key=lambda d: d.member_id)
    for decision in explain(alert, index):
        assert decision.receives == bool(decision.rule)
        assert decision.receives != bool(decision.reason)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(directories(), st.lists(alerts(member_ids=IDS), min_size=1, max_size=12), st.randoms())
def test_one_index_routes_a_stream_of_alerts_as_a_fresh_scan_would(members, stream, rng):
    """The memo of an index is shared by every alert it routes, in any order and repeatedly:
    each result must still be what a full scan of the directory decides for that alert."""
    index = RoutingIndex(Directory(members))
    order = stream + stream
    rng.shuffle(order)
    for alert in order:
        routed = route(alert, index)
        assert routed == [d for d in explain(alert, index) if d.receives]
        assert [d.member_id for d in routed] == sorted(d.member_id for d in routed)


def test_the_memo_of_an_index_is_bounded(monkeypatch):
    from pipeline.routing import index as index_module
    from tests.unit.strategies import valid_alert

    monkeypatch.setattr(index_module, "MEMO_LIMIT", 3)
    index = RoutingIndex(Directory([]))
    for confidence in range(10):
        route(valid_alert(confidence=confidence, tlp="GREEN"), index)
        assert 1 <= len(index.memo) <= 3


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    directories(),
    alerts(member_ids=IDS),
    st.lists(
        st.tuples(
            st.integers(0, 100),
            st.sampled_from([("p", "f"), ("other", "feed")]),
            st.sampled_from(
                [[], [{"type": "domain", "value": "x.example"}], [{"type": "email", "value": "a@b"}]]
            ),
        ),
        min_size=2,
        max_size=10,
    ),
)
def test_alerts_that_share_a_profile_share_their_receivers_only_when_they_should(members, base, variants):
    """Variants of one alert differ in what profiles merge (confidence between thresholds,
    unnamed feeds and indicator types): each is still routed as a fresh scan decides."""
    index = RoutingIndex(Directory(members))
    for confidence, (provider, name), indicators in variants:
        alert = base | {
            "confidence": confidence,
            "feed": {"provider": provider, "name": name},
            "indicators": indicators,
        }
        assert route(alert, index) == [d for d in explain(alert, index) if d.receives]


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(directories(), st.lists(alerts(member_ids=IDS), min_size=1, max_size=5))
def test_the_memo_leaves_the_cyclic_collectors_sight(members, stream):
    # The memo keeps tens of thousands of receivers for the worker's life: tracked, each full
    # collection would walk them all again.
    import gc

    index = RoutingIndex(Directory(members))
    for alert in stream:
        assert receivers(alert, index) == [(d.member_id, d.rule) for d in route(alert, index)]
    # A collection untracks a tuple whose items are untracked when it looks at it; an outer
    # tuple looked at before its items is untracked by the next one.
    gc.collect()
    gc.collect()
    for found in index.memo.values():
        assert not gc.is_tracked(found) and not any(gc.is_tracked(receiver) for receiver in found)
