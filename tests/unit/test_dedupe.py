from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from pipeline.dedupe import Seen, Verdict, expired, fingerprint, observe, stamp
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


def test_fingerprint_per_type_ignores_what_varies_between_reports_of_one_event():
    scan = {"taxonomy": "information-gathering", "type": "scanner", "identifier": "masscan"}
    a = valid_alert(
        **scan, source={"ip": "203.0.113.9", "port": 40000}, destination={"ip": "192.0.2.1", "port": 22}
    )
    b = valid_alert(
        **scan, source={"ip": "203.0.113.9", "port": 51515}, destination={"ip": "192.0.2.1", "port": 3389}
    )
    c = valid_alert(**scan, source={"ip": "203.0.113.9"}, destination={"ip": "192.0.2.2"})
    assert fingerprint(a) == fingerprint(b), "a scan sweeps ports"
    assert fingerprint(a) != fingerprint(c), "another target host is another event for its owner"

    exploit = alert(destination={"ip": "192.0.2.1", "port": 443})
    again = alert(source={"ip": "192.0.2.1", "port": 61000}, destination={"ip": "192.0.2.1", "port": 443})
    assert fingerprint(exploit) == fingerprint(again), "ephemeral source ports do not count"
    assert fingerprint(exploit) != fingerprint(alert(destination={"ip": "192.0.2.1", "port": 8443}))

    bot = {
        "taxonomy": "malicious-code",
        "type": "infected-system",
        "malware": {"name": "mirai", "hashes": {}},
    }
    one = valid_alert(**bot, source={"ip": "192.0.2.50"}, destination={"ip": "198.51.100.1", "port": 23})
    two = valid_alert(**bot, source={"ip": "192.0.2.50"}, destination={"ip": "198.51.100.9", "port": 80})
    assert fingerprint(one) == fingerprint(two), "an infection whatever sinkhole it reaches"

    exposed = {"taxonomy": "vulnerable", "type": "vulnerable-system", "identifier": "CVE-2024-3400"}
    assert fingerprint(valid_alert(**exposed, source={"ip": "192.0.2.7", "port": 443})) != fingerprint(
        valid_alert(**exposed, source={"ip": "192.0.2.7", "port": 8443})
    ), "each exposed service is its own event"


def test_a_more_severe_repeat_is_an_update():
    seen, verdict = observe(None, 100, (0, 1), WINDOW, rank=2)
    assert verdict is Verdict.NEW and seen.max_rank == 2
    same, verdict = observe(seen, 200, (0, 2), WINDOW, rank=2)
    assert verdict is Verdict.DUPLICATE and not verdict.forwarded
    worse, verdict = observe(same, 300, (0, 3), WINDOW, rank=4)
    assert verdict is Verdict.UPDATE and verdict.forwarded
    assert (worse.count, worse.max_rank, worse.update_origin, worse.origin) == (3, 4, (0, 3), (0, 1))
    milder, verdict = observe(worse, 400, (0, 4), WINDOW, rank=3)
    assert verdict is Verdict.DUPLICATE and milder.max_rank == 4
    assert observe(milder, 300, (0, 3), WINDOW, rank=4)[1] is Verdict.REPLAY, "the update is sent again"
    assert observe(milder, 100, (0, 1), WINDOW, rank=2)[1] is Verdict.REPLAY, "so is the opener"


def test_state_written_before_severities_never_raises_an_update():
    legacy = Seen.from_bytes(b"[1,2,3,4,5]")
    assert legacy == Seen(1, 2, 3, (4, 5), -1, None)
    assert observe(legacy, 3, (0, 9), WINDOW, rank=4)[1] is Verdict.DUPLICATE
    full = Seen(1, 2, 3, (4, 5), 3, (6, 7))
    assert Seen.from_bytes(full.to_bytes()) == full


@given(st.lists(st.tuples(st.integers(0, WINDOW // 2), st.integers(0, 4)), min_size=1, max_size=40))
def test_updates_against_reference(sightings):
    """Within one window, a sighting is forwarded exactly when it is the first or more severe than
    every one before it."""
    seen, forwarded = None, []
    for offset, (t, rank) in enumerate(sightings):
        seen, verdict = observe(seen, t, (0, offset), WINDOW, rank)
        forwarded.append(verdict.forwarded)
    ranks = [rank for _, rank in sightings]
    assert forwarded == [i == 0 or ranks[i] > max(ranks[:i]) for i in range(len(ranks))]


@given(st.integers(0, 10**12), st.integers(1, 10**9), st.integers(-(10**10), 10**10))
def test_a_window_expires_two_windows_after_its_last_sighting(
    last_us: int, window_us: int, since: int
) -> None:
    stored = Seen(last_us - 5, last_us, 3, (0, 1)).to_bytes()
    assert expired(stored, last_us + since, window_us) == (since > 2 * window_us)
