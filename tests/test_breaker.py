"""Circuit breaker: deterministic, on a fake clock."""

from __future__ import annotations

import pytest

from bridge.telegram.breaker import BreakerOpen, BreakerState, CircuitBreaker


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def changes() -> list[tuple[str, str]]:
    return []


@pytest.fixture
def breaker(clock, changes) -> CircuitBreaker:
    return CircuitBreaker(
        failure_threshold=3,
        window_seconds=10,
        open_seconds=5,
        half_open_successes=2,
        clock=clock,
        on_state_change=lambda old, new: changes.append((old.value, new.value)),
    )


def fail(breaker: CircuitBreaker, times: int, clock: FakeClock | None = None, every: float = 0) -> None:
    for _ in range(times):
        breaker.record_failure()
        if clock:
            clock.advance(every)


def test_opens_after_threshold_failures_within_the_window(breaker, clock, changes):
    fail(breaker, 2, clock, every=4)
    assert breaker.state is BreakerState.CLOSED

    breaker.record_failure()

    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()
    assert breaker.retry_in() == pytest.approx(5)
    assert changes == [("closed", "open")]


def test_failures_spread_beyond_the_window_do_not_open(breaker, clock):
    fail(breaker, 6, clock, every=5.1)

    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow()
    assert breaker.snapshot()["failures_in_window"] == 1


def test_before_call_raises_with_the_time_left(breaker, clock):
    fail(breaker, 3)
    clock.advance(2)

    with pytest.raises(BreakerOpen) as caught:
        breaker.before_call()

    assert caught.value.retry_in == pytest.approx(3)


def test_half_open_lets_one_trial_through_at_a_time(breaker, clock, changes):
    fail(breaker, 3)
    clock.advance(5)

    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow()
    assert not breaker.allow()
    breaker.record_success()
    assert breaker.allow()
    assert not breaker.allow()
    assert changes == [("closed", "open"), ("open", "half_open")]


def test_closes_after_enough_trial_successes(breaker, clock, changes):
    fail(breaker, 3)
    clock.advance(5)

    for _ in range(2):
        assert breaker.allow()
        breaker.record_success()

    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow() and breaker.allow()
    assert changes[-1] == ("half_open", "closed")


def test_failed_trial_reopens_for_twice_as_long_up_to_the_cap(clock):
    breaker = CircuitBreaker(failure_threshold=1, open_seconds=5, max_open_seconds=30, clock=clock)
    breaker.record_failure()
    periods = []
    for _ in range(5):
        periods.append(breaker.retry_in())
        clock.advance(breaker.retry_in())
        assert breaker.allow()
        breaker.record_failure()

    assert periods == [5, 10, 20, 30, 30]
    assert breaker.opens == 6


def test_open_period_resets_after_a_full_close(clock):
    breaker = CircuitBreaker(failure_threshold=1, open_seconds=5, half_open_successes=1, clock=clock)
    breaker.record_failure()
    clock.advance(5)
    breaker.allow()
    breaker.record_failure()  # reopened for 10 s
    clock.advance(10)
    breaker.allow()
    breaker.record_success()  # closed

    breaker.record_failure()

    assert breaker.retry_in() == 5


def test_default_cap_is_ten_times_the_open_period(clock):
    breaker = CircuitBreaker(open_seconds=3, clock=clock)

    assert breaker.max_open_seconds == 30
    breaker.update(open_seconds=4)
    assert breaker.max_open_seconds == 40


def test_lost_trial_stops_blocking_after_an_open_period(breaker, clock):
    fail(breaker, 3)
    clock.advance(5)
    assert breaker.allow()  # the trial's task dies without reporting

    clock.advance(4.9)
    assert not breaker.allow()
    clock.advance(0.2)
    assert breaker.allow()


def test_late_outcomes_while_open_change_nothing(breaker, clock):
    fail(breaker, 3)
    breaker.record_success()
    breaker.record_failure()

    assert breaker.state is BreakerState.OPEN
    assert breaker.retry_in() == pytest.approx(5)


def test_update_tunes_the_knobs_live(breaker, clock):
    breaker.update(failure_threshold=1, open_seconds=2)

    breaker.record_failure()

    assert breaker.state is BreakerState.OPEN
    assert breaker.retry_in() == pytest.approx(2)
    assert breaker.window_seconds == 10


def test_update_refuses_nonsense(breaker):
    with pytest.raises(ValueError):
        breaker.update(failure_threshold=0)
    with pytest.raises(ValueError):
        breaker.update(max_open_seconds=1)


def test_snapshot_describes_the_breaker(breaker, clock):
    fail(breaker, 3)
    clock.advance(1)

    assert breaker.snapshot() == {
        "state": "open",
        "failures_in_window": 0,
        "retry_in": 4.0,
        "open_seconds": 5.0,
        "half_open_successes": 0,
        "opens": 1,
        "failure_threshold": 3,
        "window_seconds": 10.0,
        "max_open_seconds": 50.0,
    }


def test_a_failing_listener_does_not_break_the_breaker(clock, caplog):
    def broken(old, new):
        raise RuntimeError("dashboard down")

    breaker = CircuitBreaker(failure_threshold=1, clock=clock, on_state_change=broken)
    breaker.record_failure()

    assert breaker.state is BreakerState.OPEN
    assert "listener failed" in caplog.text
