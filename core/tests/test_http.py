"""core.http.client_ip: the peer address, never a header the client wrote."""

import pytest
from django.test import RequestFactory

from core.http import client_ip


class TestClientIp:
    @pytest.mark.parametrize(
        ("remote_addr", "expected"),
        [("203.0.113.7", "203.0.113.7"), ("2001:db8::1", "2001:db8::1"), ("", None), ("unix-socket", None)],
    )
    def test_remote_addr(self, remote_addr, expected):
        request = RequestFactory().get("/", REMOTE_ADDR=remote_addr)
        assert client_ip(request) == expected

    def test_forwarded_headers_are_not_trusted(self):
        request = RequestFactory().get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="198.51.100.66")
        assert client_ip(request) == "10.0.0.2"

    def test_missing_remote_addr(self):
        request = RequestFactory().get("/")
        del request.META["REMOTE_ADDR"]
        assert client_ip(request) is None


class TestTrustedProxies:
    """X-Forwarded-For is read only from TRUSTED_PROXIES, right to left, never past an untrusted hop."""

    def ip(self, remote_addr: str, forwarded: str | None = None) -> str | None:
        extra = {} if forwarded is None else {"HTTP_X_FORWARDED_FOR": forwarded}
        return client_ip(RequestFactory().get("/", REMOTE_ADDR=remote_addr, **extra))

    def test_off_by_default(self, settings):
        assert settings.TRUSTED_PROXIES == []
        assert self.ip("127.0.0.1", "198.51.100.7") == "127.0.0.1"

    @pytest.mark.parametrize(
        ("remote_addr", "forwarded", "expected"),
        [
            ("10.0.0.2", "198.51.100.7", "198.51.100.7"),
            # The client wrote the first entry; the proxy appended the real one.
            ("10.0.0.2", "1.2.3.4, 198.51.100.7", "198.51.100.7"),
            # Two trusted hops: skip both, the first untrusted one is the client.
            ("10.0.0.2", "198.51.100.7, 10.0.0.9", "198.51.100.7"),
            # Everything trusted: the farthest trusted hop.
            ("10.0.0.2", "10.0.0.8, 10.0.0.9", "10.0.0.8"),
            # Garbage stops the walk at the proxy that wrote it.
            ("10.0.0.2", "198.51.100.7, not-an-ip", "10.0.0.2"),
            ("10.0.0.2", "", "10.0.0.2"),
            ("10.0.0.2", "[2001:db8::5]:443", "2001:db8::5"),
            ("10.0.0.2", "198.51.100.7:5000", "198.51.100.7"),
            # Not a trusted peer: its header is ignored.
            ("192.0.2.50", "198.51.100.7", "192.0.2.50"),
            ("::ffff:10.0.0.2", "198.51.100.7", "198.51.100.7"),
        ],
    )
    def test_read_right_to_left(self, settings, remote_addr, forwarded, expected):
        settings.TRUSTED_PROXIES = ["10.0.0.0/24"]
        assert self.ip(remote_addr, forwarded) == expected

    def test_ipv4_mapped_addresses_are_written_as_people_write_them(self):
        assert self.ip("::ffff:10.0.0.5") == "::ffff:10.0.0.5"

    @pytest.mark.django_db
    def test_login_throttle_counts_by_the_same_address(self, api_client):
        # 30 failed logins a minute per address: a new X-Forwarded-For each time changes nothing.
        def fail(i: int):
            return api_client.post(
                "/api/v1/auth/token",
                {"email": f"probe{i}@acme.test", "password": "wrong-password"},
                format="json",
                REMOTE_ADDR="192.0.2.50",
                HTTP_X_FORWARDED_FOR=f"198.51.100.{i}",
            )

        assert [fail(i).status_code for i in range(31)] == [401] * 30 + [429]

    def test_a_bad_setting_refuses_to_start(self):
        from django.core.exceptions import ImproperlyConfigured

        from haltless.settings.base import _networks

        with pytest.raises(ImproperlyConfigured, match="TRUSTED_PROXIES"):
            _networks(["10.0.0.1/8"], "TRUSTED_PROXIES")
        assert _networks([" 10.0.0.0/8 ", "::1"], "TRUSTED_PROXIES") == ["10.0.0.0/8", "::1/128"]
