"""The sliding window itself (in-process counter), with the clock under the test's control."""

import pytest

from apikeys import ratelimit


@pytest.fixture
def clock(monkeypatch):
    now = {"t": 1_000_000.0}
    monkeypatch.setattr(ratelimit.time, "time", lambda: now["t"])
    return now


def test_slides_second_by_second(clock):
    window = ratelimit.LocalWindow()
    hit = lambda: window.hit(["k"], [3], 1)  # noqa: E731
    assert [hit()[0] for _ in range(3)] == [1, 1, 1]
    clock["t"] += 30
    refused = hit()
    assert refused[:2] == [0, 1]
    assert refused[2] == 30  # the three from 30 s ago leave the window in 30 s
    clock["t"] += 30  # exactly 60 s after the first three: they are out
    assert hit()[0] == 1


def test_retry_after_counts_what_must_leave(clock):
    window = ratelimit.LocalWindow()
    window.hit(["k"], [10], 4)  # t0
    clock["t"] += 20
    window.hit(["k"], [10], 6)  # t0 + 20: full
    clock["t"] += 5
    refused = window.hit(["k"], [10], 5)
    # 5 more need the 4 of t0 and the 6 of t0+20 to leave: the latter goes at t0+80, 55 s from now.
    assert refused[:3] == [0, 1, 55]
    assert window.hit(["k"], [10], 0)[0] == 1


def test_every_limit_must_allow_and_a_refusal_counts_nothing(clock):
    window = ratelimit.LocalWindow()
    assert window.hit(["key", "tenant"], [5, 2], 2)[0] == 1
    refused = window.hit(["key", "tenant"], [5, 2], 1)
    assert refused[:2] == [0, 2]  # the tenant's cap refused it
    assert refused[4:6] == [2, 2]  # nothing added to either window


def test_refund_gives_back(clock):
    window = ratelimit.LocalWindow()
    answer = window.hit(["k"], [10], 8)
    window.refund(["k"], answer[-1], 8)
    assert window.hit(["k"], [10], 10)[0] == 1
