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
