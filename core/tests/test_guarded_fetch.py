"""The guarded fetch's URL syntax and address policy, tested without connecting (nothing is dialled here).

The transport (pinning, the deadline, TLS) is tested through its callers:
settings_app/tests/test_probe.py and webhooks/tests/test_webhooks.py.
"""

import ipaddress
import socket

import pytest

from core import guarded_fetch
from core.guarded_fetch import Policy, address_refusal


def ip(text):
    return ipaddress.ip_address(text)


class TestAddressRules:
    @pytest.mark.parametrize(
        ("address", "reason"),
        [
            ("169.254.169.254", "a cloud metadata address"),
            ("169.254.170.2", "a cloud metadata address"),
            ("fd00:ec2::254", "a cloud metadata address"),
            ("100.100.100.200", "a cloud metadata address"),
            ("168.63.129.16", "a cloud metadata address"),
            ("192.0.0.192", "a cloud metadata address"),
            ("169.254.1.1", "a link-local address"),
            ("fe80::1", "a link-local address"),
            ("224.0.0.1", "a multicast address"),
            ("239.255.255.250", "a multicast address"),
            ("ff02::1", "a multicast address"),
            ("0.0.0.0", "an unspecified address"),
            ("0.1.2.3", "an unspecified address"),
            ("::", "an unspecified address"),
            ("255.255.255.255", "a reserved address"),
            ("240.0.0.1", "a reserved address"),
            ("fec0::1", "a reserved address"),
            ("127.0.0.1", "a loopback address"),
            ("127.255.0.9", "a loopback address"),
            ("::1", "a loopback address"),
        ],
    )
    def test_refused(self, address, reason):
        assert address_refusal(ip(address), allow_loopback=False) == reason

    @pytest.mark.parametrize(
        ("address", "reason"),
        [
            ("::ffff:127.0.0.1", "a loopback address"),
            ("::ffff:169.254.169.254", "a cloud metadata address"),
            ("::ffff:0:7f00:1", "a loopback address"),  # IPv4-translated
            ("2002:7f00:1::1", "a loopback address"),  # 6to4
            ("2002:a9fe:a9fe::1", "a cloud metadata address"),  # 6to4 of 169.254.169.254
            ("::7f00:1", "a loopback address"),  # IPv4-compatible
            ("::ffff:0.0.0.0", "an unspecified address"),
            ("::ffff:224.0.0.1", "a multicast address"),
        ],
    )
    def test_ipv6_forms_are_judged_by_the_ipv4_address_inside(self, address, reason):
        refusal = address_refusal(ip(address), allow_loopback=False)
        assert refusal is not None and refusal.startswith(reason)
        assert "embedded in an IPv6 address" in refusal

    def test_teredo_is_judged_by_its_client_address(self):
        # Teredo stores the client address inverted: ~127.0.0.1 = 128.255.255.254.
        teredo = ipaddress.IPv6Address("2001:0:4136:e378:8000:63bf:80ff:fffe")
        assert teredo.teredo[1] == ip("127.0.0.1")
        assert address_refusal(teredo, allow_loopback=False).startswith("a loopback address")

    @pytest.mark.parametrize("address", ["127.0.0.1", "::1", "::ffff:127.0.0.1", "64:ff9b::7f00:1"])
    def test_loopback_is_allowed_when_configured(self, address):
        assert address_refusal(ip(address), allow_loopback=True) is None

    def test_metadata_stays_refused_when_loopback_is_allowed(self):
        assert address_refusal(ip("169.254.169.254"), allow_loopback=True) == "a cloud metadata address"

    @pytest.mark.parametrize(
        "address",
        [
            "192.168.1.50",
            "10.0.0.5",
            "172.16.4.2",
            "100.64.0.1",  # shared address space (carrier-grade NAT, VPN meshes)
            "fd12:3456:789a::1",  # unique local
            "::ffff:192.168.1.50",
            "8.8.8.8",
            "2001:4860:4860::8888",
        ],
    )
    def test_private_lan_and_public_addresses_pass(self, address):
        assert address_refusal(ip(address), allow_loopback=False) is None


class TestLiteralAddresses:
    @pytest.mark.parametrize(
        ("host", "address"),
        [
            ("127.0.0.1", "127.0.0.1"),
            ("127.1", "127.0.0.1"),
            ("2130706433", "127.0.0.1"),
            ("0x7f000001", "127.0.0.1"),
            ("0177.0.0.1", "127.0.0.1"),
            ("0x7f.1", "127.0.0.1"),
            ("::ffff:127.0.0.1", "::ffff:127.0.0.1"),
            ("192.168.1.50", "192.168.1.50"),
        ],
    )
    def test_every_form_getaddrinfo_reads_is_recognised(self, host, address):
        assert guarded_fetch.literal_address(host) == ip(address)
        # The same answer the resolver would give, so nothing slips between the two.
        assert ip(socket.getaddrinfo(host, 80, type=socket.SOCK_STREAM)[0][4][0]) == ip(address)

    @pytest.mark.parametrize("host", ["localhost", "ollama.lan", "abc.123", "deadbeef"])
    def test_host_names_are_not_literals(self, host):
        assert guarded_fetch.literal_address(host) is None


class TestUrlSyntax:
    @pytest.mark.parametrize(
        ("url", "message"),
        [
            ("", "Enter the URL"),
            ("ftp://192.168.1.50/", "Only http:// and https://"),
            ("file:///etc/passwd", "Only http:// and https://"),
            ("gopher://192.168.1.50:70/", "Only http:// and https://"),
            ("192.168.1.50:11434", "Only http:// and https://"),
            ("http://user:pw@192.168.1.50:11434", "user name or password"),
            ("http://user@192.168.1.50", "user name or password"),
            ("http://192.168.1.50:11434/?x=1", "query string or fragment"),
            ("http://192.168.1.50:11434/#top", "query string or fragment"),
            ("http://192.168.1.50:99999", "not valid"),
            ("http://192.168.1.50:0", "port is not valid"),
            ("http://", "needs a host"),
            ("http://bad host/", "spaces or control characters"),
            ("http://ollama.lan\r\nX-Evil: 1/", "spaces or control characters"),
            ("http://[fe80::1%25eth0]:11434", "zone ids"),
            ("http://[not-ipv6]:80", "not valid"),
            ("http://exa$mple.com/", "host name is not valid"),
            ("http://a..b/", "host name is not valid"),
            ("http://" + "a" * 2100, "longer than"),
        ],
    )
    def test_refused(self, url, message):
        with pytest.raises(guarded_fetch.UrlRefused, match=message):
            guarded_fetch.parse_url(url)

    def test_parts(self):
        target = guarded_fetch.parse_url("  HTTPS://Ollama.LAN:8443/base/v1/  ")
        assert target == guarded_fetch.Target(scheme="https", host="ollama.lan", port=8443, base_path="/base/v1")

    def test_default_ports_and_idna(self):
        assert guarded_fetch.parse_url("http://münchen.example").host == "xn--mnchen-3ya.example"
        assert guarded_fetch.parse_url("http://münchen.example").port == 80
        assert guarded_fetch.parse_url("https://[::1]").port == 443


def nat64(prefix_length: int, ipv4: str, prefix: str = "64:ff9b:1::") -> ipaddress.IPv6Address:
    """`ipv4` embedded in `prefix` with the RFC 6052 layout for `prefix_length` (suffix zero)."""
    v4 = int(ipaddress.IPv4Address(ipv4))
    base = int(ipaddress.IPv6Address(prefix))
    if prefix_length == 96:
        return ipaddress.IPv6Address(base | v4)
    if prefix_length == 64:
        return ipaddress.IPv6Address(base | (v4 << 24))
    # /32../56: the address is split around bits 64..71 (the "u" octet, zero).
    before_u = 64 - prefix_length  # bits of the IPv4 address before the u octet
    high, low = v4 >> (32 - before_u), v4 & ((1 << (32 - before_u)) - 1)
    return ipaddress.IPv6Address(base | (high << 64) | (low << (56 - (32 - before_u))))


class TestNat64EveryLayout:
    """RFC 6052 layouts /32, /40, /48, /56, /64, /96, in the well-known and the local-use (RFC 8215) prefix."""

    LAYOUTS = [32, 40, 48, 56, 64, 96]

    def test_the_layout_helper_matches_rfc_6052s_examples(self):
        # RFC 6052 section 2.4, 192.0.2.33 with the prefix 2001:db8::/n.
        examples = {
            32: "2001:db8:c000:221::",
            40: "2001:db8:1c0:2:21::",
            48: "2001:db8:122:c000:2:2100::",
            56: "2001:db8:122:3c0:0:221::",
            64: "2001:db8:122:344:c0:2:2100:0",
            96: "2001:db8:122:344::192.0.2.33",
        }
        prefixes = {32: "2001:db8::", 40: "2001:db8:100::", 48: "2001:db8:122::", 56: "2001:db8:122:300::"}
        for length, expected in examples.items():
            prefix = prefixes.get(length, "2001:db8:122:344::")
            assert nat64(length, "192.0.2.33", prefix) == ipaddress.IPv6Address(expected)

    # The local-use /48 holds the layouts of prefixes /48 and longer; 64:ff9b::/32 holds them all.
    PREFIX_LAYOUTS = [("64:ff9b::", length) for length in LAYOUTS] + [("64:ff9b:1::", n) for n in (48, 56, 64, 96)]

    @pytest.mark.parametrize(("prefix", "length"), PREFIX_LAYOUTS)
    @pytest.mark.parametrize("ipv4", ["169.254.169.254", "127.0.0.1", "169.254.3.4", "224.0.0.1", "100.100.100.200"])
    def test_a_refused_ipv4_address_is_refused_in_every_layout(self, prefix, length, ipv4):
        address = nat64(length, ipv4, prefix)
        assert ip(ipv4) in guarded_fetch.nat64_readings(address)
        refusal = address_refusal(address, allow_loopback=False)
        assert refusal is not None and refusal.endswith("embedded in a NAT64 address)"), str(address)

    @pytest.mark.parametrize(("prefix", "length"), PREFIX_LAYOUTS)
    def test_the_metadata_address_is_named_in_every_layout(self, prefix, length):
        address = nat64(length, "169.254.169.254", prefix)
        reasons = [address_refusal(r, allow_loopback=False) for r in guarded_fetch.nat64_readings(address)]
        assert "a cloud metadata address" in reasons

    @pytest.mark.parametrize("ipv4", ["8.8.8.8", "192.168.1.50", "10.20.30.40"])
    @pytest.mark.parametrize("prefix", ["64:ff9b:1::", "64:ff9b::"])
    def test_the_well_known_layout_of_an_allowed_address_is_allowed(self, prefix, ipv4):
        assert address_refusal(nat64(96, ipv4, prefix), allow_loopback=False) is None

    def test_suffix_bits_do_not_hide_the_address(self):
        # Translators ignore the suffix; a non-zero one must not hide a /48-layout metadata address.
        hidden = ipaddress.IPv6Address(int(nat64(48, "169.254.169.254")) | 0x8_08_08_08)
        assert address_refusal(hidden, allow_loopback=False).startswith("a cloud metadata address")

    def test_the_bare_prefix_is_unspecified(self):
        refusal = address_refusal(ipaddress.IPv6Address("64:ff9b::"), allow_loopback=False)
        assert refusal.startswith("an unspecified address")

    def test_loopback_in_nat64_follows_the_loopback_setting(self):
        assert address_refusal(nat64(64, "127.0.0.1"), allow_loopback=True) is None


class TestPolicy:
    """The caller's allowances: private addresses (webhooks refuse them unless allowed) and loopback."""

    STRICT = Policy(peer="webhook endpoint", allow_private=False)

    @pytest.mark.parametrize(
        "address",
        [
            "10.1.2.3",
            "172.16.4.2",
            "192.168.1.50",
            "100.64.0.1",  # shared address space
            "fd12:3456:789a::1",  # unique local
            "::ffff:10.1.2.3",  # mapped
            "2002:a01:203::1",  # 6to4 of 10.1.2.3
            "64:ff9b::a01:203",  # NAT64 of 10.1.2.3
        ],
    )
    def test_private_addresses_are_refused_when_not_allowed(self, address):
        assert self.STRICT.refusal(ip(address)) == "a private address"
        assert Policy(allow_private=True).refusal(ip(address)) is None

    @pytest.mark.parametrize("address", ["8.8.8.8", "2001:4860:4860::8888", "64:ff9b::808:808", "::ffff:8.8.8.8"])
    def test_public_addresses_pass_a_strict_policy(self, address):
        assert self.STRICT.refusal(ip(address)) is None

    def test_the_base_rules_come_first(self):
        assert self.STRICT.refusal(ip("169.254.169.254")) == "a cloud metadata address"
        assert self.STRICT.refusal(ip("127.0.0.1")) == "a loopback address"

    def test_loopback_allowed_is_not_private(self):
        policy = Policy(allow_loopback=True, allow_private=False)
        assert policy.refusal(ip("127.0.0.1")) is None
        assert policy.refusal(ip("10.0.0.1")) == "a private address"

    @pytest.mark.parametrize(
        ("address", "reached"),
        [
            ("10.0.0.1", ["10.0.0.1"]),
            ("::ffff:10.0.0.1", ["::ffff:10.0.0.1", "10.0.0.1"]),
            ("2001:4860::1", ["2001:4860::1"]),
            # The /96 reading of a NAT64 address, and no 0.0.0.0/8 zero-bit readings of other layouts.
            ("64:ff9b::808:808", ["64:ff9b::808:808", "8.8.8.8"]),
            ("64:ff9b::", ["64:ff9b::", "0.0.0.0"]),
        ],
    )
    def test_reached_addresses(self, address, reached):
        assert guarded_fetch.reached_addresses(ip(address)) == [ip(a) for a in reached]


class TestSavedUrlCheckUnderAPolicy:
    def test_messages_name_the_callers_peer(self):
        with pytest.raises(guarded_fetch.UrlRefused, match=r"^Enter the URL of the webhook endpoint\.$"):
            guarded_fetch.check_saved_url(" ", policy=Policy(peer="webhook endpoint"))
        with pytest.raises(guarded_fetch.AddressRefused) as refused:
            guarded_fetch.check_saved_url("http://10.0.0.1/hook", policy=TestPolicy.STRICT)
        assert str(refused.value) == (
            "Refused: 10.0.0.1 is a private address; the webhook endpoint must be reachable at a public address."
        )
        with pytest.raises(guarded_fetch.AddressRefused) as refused:
            guarded_fetch.check_saved_url("http://localhost:11434", policy=Policy(peer="AI server"))
        assert str(refused.value) == (
            "Refused: localhost resolves to 127.0.0.1, a loopback address; "
            "the AI server must be reachable at a LAN or public address."
        )

    @pytest.mark.parametrize(
        "url", ["http://localhost", "http://localhost.", "http://a.localhost", "http://a.localhost."]
    )
    def test_localhost_names_are_loopback_with_or_without_the_final_dot(self, url):
        with pytest.raises(guarded_fetch.AddressRefused, match="a loopback address"):
            guarded_fetch.check_saved_url(url, policy=Policy())
        assert guarded_fetch.check_saved_url(url, policy=Policy(allow_loopback=True)) == url

    def test_host_names_are_not_resolved(self, monkeypatch):
        monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: pytest.fail("DNS was used while saving"))
        assert guarded_fetch.check_saved_url(" http://hooks.example.com/x ", policy=TestPolicy.STRICT) == (
            "http://hooks.example.com/x"
        )


class TestResolveChecked:
    def answers(self, monkeypatch, *addresses):
        family = {True: socket.AF_INET6, False: socket.AF_INET}
        infos = [(family[":" in a], socket.SOCK_STREAM, 6, "", (a, 80)) for a in addresses]
        monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: infos)

    def test_every_address_is_checked_and_duplicates_dropped(self, monkeypatch):
        self.answers(monkeypatch, "192.168.1.50", "192.168.1.50", "2001:db8::1")
        target = guarded_fetch.parse_url("http://ai.lan")
        addresses = guarded_fetch.resolve_checked(target, guarded_fetch.Deadline(5), policy=Policy())
        assert addresses == [ip("192.168.1.50"), ip("2001:db8::1")]

    def test_one_refused_address_refuses_the_name(self, monkeypatch):
        self.answers(monkeypatch, "8.8.8.8", "10.0.0.9")
        target = guarded_fetch.parse_url("http://hooks.example.com")
        with pytest.raises(guarded_fetch.AddressRefused, match=r"hooks.example.com resolves to 10.0.0.9, a private"):
            guarded_fetch.resolve_checked(target, guarded_fetch.Deadline(5), policy=TestPolicy.STRICT)

    def test_no_address_is_a_failure(self, monkeypatch):
        self.answers(monkeypatch)
        target = guarded_fetch.parse_url("http://empty.example")
        with pytest.raises(guarded_fetch.FetchFailed, match=r"^The host name empty.example has no address\.$"):
            guarded_fetch.resolve_checked(target, guarded_fetch.Deadline(5), policy=Policy())

    def test_a_spent_deadline_stops_before_the_lookup_answers(self, monkeypatch):
        self.answers(monkeypatch, "8.8.8.8")
        deadline = guarded_fetch.Deadline(0)
        with pytest.raises(guarded_fetch.DeadlinePassed):
            guarded_fetch.resolve_checked(guarded_fetch.parse_url("http://x.example"), deadline, policy=Policy())
