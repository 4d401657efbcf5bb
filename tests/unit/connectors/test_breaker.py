import pytest

from connectors.breaker import CircuitBreaker, State


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_opens_after_threshold_failures_in_a_row():
    clock = Clock()
    breaker = CircuitBreaker(threshold=3, cooldown=10, max_cooldown=100, clock=clock)
    breaker.record(False)
    breaker.record(False)
    breaker.record(True)
    breaker.record(False)
    breaker.record(False)
    assert breaker.state is State.CLOSED
    breaker.record(False)
    assert breaker.state is State.OPEN
    assert breaker.wait() == 10


def test_probation_after_cooldown_then_closes_on_success():
    clock = Clock()
    breaker = CircuitBreaker(threshold=1, cooldown=10, max_cooldown=100, clock=clock)
    breaker.record(False)
    clock.now = 9.5
    assert breaker.state is State.OPEN
    assert breaker.wait() == pytest.approx(0.5)
    clock.now = 10
    assert breaker.state is State.HALF_OPEN
    assert breaker.wait() == 0
    breaker.record(True)
    assert breaker.state is State.CLOSED


def test_failed_probation_doubles_the_cooldown_up_to_the_cap():
    clock = Clock()
    breaker = CircuitBreaker(threshold=1, cooldown=10, max_cooldown=25, clock=clock)
    breaker.record(False)
    for expected in (20, 25, 25):
        clock.now += 100
        assert breaker.state is State.HALF_OPEN
        breaker.record(False)
        assert breaker.state is State.OPEN
        assert breaker.wait() == expected
    clock.now += 100
    breaker.record(True)
    breaker.record(False)
    assert breaker.wait() == 10
    assert breaker.opened == 5
