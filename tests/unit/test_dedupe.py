from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from pipeline.dedupe import Seen, Verdict, fingerprint, observe, stamp
from tests.unit.strategies import valid_alert

NOW = datetime(2026, 11, 29, 12, tzinfo=UTC)
WINDOW = 3600 * 10**6


def alert(**changes):
    return valid_alert(
        **({"source": {"ip": "192.0.2.1", "port": 4444}, "identifier": "ET EXPLOIT x"} | changes)
    )


def test_fingerprint_ignores_id_time_and_severity():
    a = alert(severity="low")
    b = alert(severity="high", time_observation="2026-11-29T11:30:00Z", description="again")
    assert a["id"] != b["id"]
    assert fingerprint(a) == fingerprint(b)


def test_fingerprint_distinguishes_observables():
    assert fingerprint(alert()) != fingerprint(alert(source={"ip": "192.0.2.2", "port": 4444}))
    assert fingerprint(alert()) != fingerprint(alert(feed={"provider": "cert", "name": "other"}))


def test_observe_cases():
    seen, verdict = observe(None, 100, (0, 1), WINDOW)
    assert verdict is Verdict.NEW and seen == Seen(100, 100, 1, (0, 1))
    again, verdict = observe(seen, 200, (0, 2), WINDOW)
    assert verdict is Verdict.DUPLICATE and again == Seen(100, 200, 2, (0, 1))
    replay, verdict = observe(again, 100, (0, 1), WINDOW)
    assert verdict is Verdict.REPLAY and replay == again
    later, verdict = observe(again, 200 + WINDOW + 1, (0, 3), WINDOW)
    assert verdict is Verdict.NEW and later.count == 1
    older, verdict = observe(again, 50, (0, 4), WINDOW)
    assert verdict is Verdict.DUPLICATE and older.first_us == 50 and older.last_us == 200


def test_seen_round_trips():
    seen = Seen(1, 2, 3, (4, 5))
    assert Seen.from_bytes(seen.to_bytes()) == seen


def test_stamp_writes_aggregation():
    out = stamp(alert(), Seen(0, 1_000_000, 2, (0, 0)))
    assert out["count"] == 2 and out["last_seen"] == datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)


@given(st.lists(st.integers(0, 10 * WINDOW), max_size=40))
def test_sliding_window_against_reference(times):
    """In time order, a sighting is new exactly when the previous one is more than a window ago."""
    times = sorted(times)
    seen = None
    new = 0
    for offset, t in enumerate(times):
        seen, verdict = observe(seen, t, (0, offset), WINDOW)
        new += verdict is Verdict.NEW
    expected = sum(1 for i, t in enumerate(times) if i == 0 or t - times[i - 1] > WINDOW)
    assert new == expected


def test_window_in_time():
    first = observe(None, 0, (0, 0), WINDOW)[0]
    assert (
        observe(first, int(timedelta(minutes=59).total_seconds() * 1e6), (0, 1), WINDOW)[1]
        is Verdict.DUPLICATE
    )
