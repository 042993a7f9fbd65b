"""The database throttle counter: counts first, windows, release, no clear-text identities."""

import pytest

from core.models import ThrottleCounter
from core.throttling import Rate, throttle_hit, throttle_hits, throttle_key, throttle_release, throttle_reset

pytestmark = pytest.mark.django_db

TEN_A_MINUTE = Rate(limit=10, period=60)


class TestRate:
    @pytest.mark.parametrize(
        ("text", "rate"),
        [("10/min", Rate(10, 60)), ("30/m", Rate(30, 60)), ("5/s", Rate(5, 1)), ("10/hour", Rate(10, 3600))],
    )
    def test_parses_drf_notation(self, text, rate):
        assert Rate.parse(text) == rate


class TestThrottleHit:
    def test_counts_every_hit_and_allows_up_to_the_limit(self):
        hits = [throttle_hit(key="t:a", rate=TEN_A_MINUTE, now=1000.0) for _ in range(11)]
        assert [hit.count for hit in hits] == list(range(1, 12))
        assert [hit.allowed for hit in hits] == [True] * 10 + [False]

    def test_the_window_opens_with_the_first_hit_and_does_not_move(self):
        throttle_hit(key="t:a", rate=TEN_A_MINUTE, now=1000.0)
        later = throttle_hit(key="t:a", rate=TEN_A_MINUTE, now=1059.0)
        assert later.window_ends_at == 1060.0
        assert later.count == 2

    def test_a_new_window_starts_once_the_old_one_ended(self):
        for _ in range(12):
            throttle_hit(key="t:a", rate=TEN_A_MINUTE, now=1000.0)
        fresh = throttle_hit(key="t:a", rate=TEN_A_MINUTE, now=1060.0)
        assert (fresh.count, fresh.allowed, fresh.window_ends_at) == (1, True, 1120.0)

    def test_keys_are_independent(self):
        for _ in range(10):
            throttle_hit(key="t:a", rate=TEN_A_MINUTE, now=1000.0)
        assert throttle_hit(key="t:b", rate=TEN_A_MINUTE, now=1000.0).count == 1

    def test_wait_seconds_is_the_rest_of_the_window(self):
        hit = throttle_hit(key="t:a", rate=TEN_A_MINUTE)
        assert 59 <= hit.wait_seconds <= 60


class TestThrottleHits:
    def test_counts_several_keys_in_one_statement_in_the_order_given(self, django_assert_num_queries):
        throttle_hit(key="t:b", rate=TEN_A_MINUTE, now=1000.0)
        with django_assert_num_queries(1):
            hits = throttle_hits(keys=[("t:b", TEN_A_MINUTE), ("t:a", Rate(3, 10))], now=1000.0)
        assert [(hit.key, hit.count, hit.limit, hit.window_ends_at) for hit in hits] == [
            ("t:b", 2, 10, 1060.0),
            ("t:a", 1, 3, 1010.0),
        ]


class TestRelease:
    def test_gives_one_hit_back(self):
        hit = throttle_hit(key="t:a", rate=TEN_A_MINUTE, now=1000.0)
        throttle_hit(key="t:a", rate=TEN_A_MINUTE, now=1000.0)
        throttle_release(hit)
        assert ThrottleCounter.objects.get(key="t:a").count == 1

    def test_does_not_touch_a_later_window(self):
        old = throttle_hit(key="t:a", rate=TEN_A_MINUTE, now=1000.0)
        throttle_hit(key="t:a", rate=TEN_A_MINUTE, now=2000.0)
        throttle_release(old)
        assert ThrottleCounter.objects.get(key="t:a").count == 1

    def test_gives_back_several_in_one_statement(self, django_assert_num_queries):
        hits = throttle_hits(keys=[("t:a", TEN_A_MINUTE), ("t:b", TEN_A_MINUTE)], now=1000.0)
        with django_assert_num_queries(1):
            throttle_release(*hits)
        assert set(ThrottleCounter.objects.values_list("count", flat=True)) == {0}

    def test_reset_forgets_the_key(self):
        throttle_hit(key="t:a", rate=TEN_A_MINUTE)
        throttle_reset(key="t:a")
        assert not ThrottleCounter.objects.exists()


class TestKeys:
    def test_the_identity_is_stored_as_a_digest(self):
        key = throttle_key(scope="login_account", ident="jane@acme.test")
        assert key.startswith("login_account:")
        assert "jane" not in key
        assert len(key) <= ThrottleCounter._meta.get_field("key").max_length

    def test_a_lone_surrogate_is_no_error(self):
        assert throttle_key(scope="s", ident="\ud800").startswith("s:")


@pytest.mark.django_db
def test_the_sweep_removes_windows_that_ended_a_day_ago(monkeypatch):
    import time

    from core import throttling

    rate = Rate(limit=5, period=60)
    throttle_hit(key="old", rate=rate, now=time.time() - 2 * 86400)
    throttle_hit(key="recent", rate=rate, now=time.time() - 3600)
    monkeypatch.setattr(throttling, "_SWEEP_ONE_IN", 1)
    throttle_hit(key="now", rate=rate)
    assert sorted(ThrottleCounter.objects.values_list("key", flat=True)) == ["now", "recent"]
