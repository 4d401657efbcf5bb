import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.retry import RetryPolicy, parse_retry_after

POLICY = RetryPolicy(base_seconds=0.5, cap_seconds=8, max_attempts=5, max_elapsed_seconds=60)


@given(st.integers(1, 4), st.integers(0, 2**32))
def test_full_jitter_stays_within_the_exponential_step(attempts, seed):
    delay = POLICY.next_delay(attempts, 0.0, rng=random.Random(seed))
    assert delay is not None
    assert 0 <= delay <= min(8, 0.5 * 2 ** (attempts - 1))


def test_jitter_spreads_the_waits():
    delays = {round(POLICY.next_delay(4, 0.0, rng=random.Random(s)), 3) for s in range(50)}
    assert len(delays) > 40


def test_gives_up_after_the_last_attempt():
    assert POLICY.next_delay(5, 0.0) is None
    assert POLICY.next_delay(4, 0.0) is not None


def test_gives_up_when_the_time_budget_would_be_passed():
    assert POLICY.next_delay(2, 60.0) is None
    assert POLICY.next_delay(2, 59.0, retry_after=0.5) is not None


def test_retry_after_is_a_floor():
    assert POLICY.next_delay(1, 0.0, retry_after=7.0, rng=random.Random(1)) == 7.0


def test_a_retry_after_beyond_the_budget_gives_up_at_once():
    assert POLICY.next_delay(1, 0.0, retry_after=3600.0) is None


def test_parse_retry_after_seconds_and_dates():
    now = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
    assert parse_retry_after("120") == 120.0
    later = (now + timedelta(seconds=30)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert parse_retry_after(later, now) == pytest.approx(30.0)
    assert parse_retry_after("Sun, 29 Nov 2026 09:00:00 GMT", now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
    assert parse_retry_after("٣") is None


def test_policy_limits_are_checked():
    with pytest.raises(ValueError, match="base_seconds"):
        RetryPolicy(base_seconds=0)
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
