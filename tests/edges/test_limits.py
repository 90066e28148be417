"""The edges' rate limits by key: a token bucket per key on an injected clock, and a bounded
number of keys, forgetting first those with nothing to remember."""

from __future__ import annotations

import pytest

from actors.clock import MockClock
from actors.edges.limits import RateLimiter, RateRules


def test_a_key_gets_its_burst_then_its_rate_and_others_are_not_held_back() -> None:
    clock = MockClock(0.0)
    limiter = RateLimiter(RateRules(burst=2, per_s=4.0), clock)
    assert [limiter.take("a"), limiter.take("a")] == [0.0, 0.0]
    assert limiter.take("a") == pytest.approx(0.25)
    assert limiter.take("b") == 0.0
    clock.advance(0.25)
    assert limiter.take("a") == 0.0


def test_at_its_bound_it_forgets_refilled_keys_first_then_the_least_recently_used() -> None:
    clock = MockClock(0.0)
    limiter = RateLimiter(RateRules(burst=1, per_s=1.0), clock, max_keys=3)
    limiter.take("throttled")
    limiter.take("old")
    clock.advance(10)                     # "throttled" and "old" have refilled by now
    limiter.take("throttled")             # empty again: it has something to remember
    limiter.take("new")
    limiter.take("newer")                 # the bound: "old" (refilled) goes, "throttled" stays
    assert limiter.take("throttled") == pytest.approx(1.0)
    limiter.take("x")
    limiter.take("y")                     # none refilled: the least recently used go
    assert limiter.take("throttled") == pytest.approx(1.0), "used last, so kept"
    assert limiter.take("new") == 0.0, "forgotten, so it starts with a full bucket"
