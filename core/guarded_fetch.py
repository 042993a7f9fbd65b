"""Outbound HTTP to a URL a user chose, without becoming an SSRF tool. No Django here.

The AI model probe (settings_app.probe) and the webhook sender (webhooks.sender)
both send requests to URLs their users typed in, so both go through this module:

1. The URL is parsed (`parse_url`): http or https only, a host, no user name or
   password, no query or fragment.
2. The host is resolved once (an IP literal in any form getaddrinfo accepts,
   such as `127.1` or `0x7f000001`, is parsed without DNS). EVERY address it
   resolves to is checked against the caller's `Policy`; one refused address
   refuses the whole URL. IPv6 forms that embed an IPv4 address (`::ffff:a.b.c.d`,
   NAT64, 6to4, Teredo, IPv4-compatible) are judged by the IPv4 address inside.
3. The connection is opened here, to a checked address only (`pinned_connection`);
   the HTTP client is handed that socket and never resolves the name again, so a
   DNS answer that changes between check and use (rebinding) cannot redirect it.
   The Host header and the TLS server name (SNI) stay the original host name, and
   the certificate is verified against that name.
4. One `Deadline` bounds everything a caller does with it (lookup, connects, TLS,
   each request, every read): each socket read waits only for what is left of it,
   so a server that drips bytes cannot stretch it. Redirects are never followed
   (http.client does not), and `read_limited` reads at most a given size.

What is allowed is the caller's to say, from its own settings: a `Policy` says
whether loopback and private addresses may be reached and how messages name the
other end. This module reads no setting.

The standard library (socket, ssl, http.client) is used rather than an HTTP
library because the pinning must be explicit and visible here: a library that
resolves and connects by itself would need hooks to do the same, and a hook
that is missed silently re-opens the hole.
"""

import http.client
import ipaddress
import re
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_URL_LENGTH = 2048

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Cloud instance-metadata and platform endpoints. Some lie in ranges that are
# otherwise allowed (fd00:ec2::254 is a unique-local address, 100.100.100.200
# shared address space, 168.63.129.16 public), so they are listed by address.
METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean, ...
        "169.254.169.253",  # AWS VPC DNS
        "169.254.170.2",  # AWS ECS task metadata
        "169.254.0.23",  # Tencent Cloud
        "100.100.100.200",  # Alibaba Cloud
        "168.63.129.16",  # Azure WireServer
        "192.0.0.192",  # Oracle Cloud
        "fd00:ec2::254",  # AWS IMDS over IPv6
        "fd00:ec2::253",  # AWS VPC DNS over IPv6
    )
)
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")
_LIMITED_BROADCAST = ipaddress.ip_address("255.255.255.255")
_LOCALHOST = ipaddress.ip_address("127.0.0.1")
# The well-known NAT64 prefix 64:ff9b::/96 (RFC 6052) and the local-use 64:ff9b:1::/48 (RFC 8215)
# both lie in 64:ff9b::/32; a translator may use any RFC 6052 layout inside it.
_NAT64_SPACE = ipaddress.ip_network("64:ff9b::/32")
# RFC 6052 section 2.2: per prefix length, the bit ranges (from the left) that carry the
# IPv4 address; bits 64..71 (the "u" octet) never do.
_NAT64_LAYOUTS: dict[int, tuple[tuple[int, int], ...]] = {
    32: ((32, 64),),
    40: ((40, 64), (72, 80)),
    48: ((48, 64), (72, 88)),
    56: ((56, 64), (72, 96)),
    64: ((72, 104),),
    96: ((96, 128),),
}
_IPV4_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_DISCARD_ONLY = ipaddress.ip_network("100::/64")

_HOST_NAME = re.compile(r"^[a-z0-9_](?:[a-z0-9_.-]{0,251}[a-z0-9_.])?$")
# What getaddrinfo (inet_aton) reads as an IPv4 address: 1 to 4 decimal, octal or hex parts.
_LEGACY_IPV4 = re.compile(r"^(?:0x[0-9a-f]*|[0-9]+)(?:\.(?:0x[0-9a-f]*|[0-9]+)){0,3}$")
_PATH = re.compile(r"^[A-Za-z0-9\-._~/%!$&'()*+,;=:@]*$")


class UrlRefused(Exception):
    """The URL, or an address its host resolves to, is not allowed; never connected to.

    For a URL's syntax the message is for the user ("Only http:// and https:// URLs
    are allowed.").
    """


class AddressRefused(UrlRefused):
    """An address the host is, or resolves to, is refused by the caller's policy.

    The message says which address and why, for the server's log; an API answers one
    fixed text instead, so that refusals do not map the network.
    """


class FetchFailed(Exception):
    """The host could not be resolved or connected to: the message is the reason, for the log."""


class DeadlinePassed(Exception):
    """The deadline ran out (a lookup, a connect, a handshake or a read was waiting)."""


class BodyTooLarge(Exception):
    """The answer is (or says it is) larger than the reader accepts."""


@dataclass(frozen=True)
class Policy:
    """Which addresses a caller may reach, and how its messages name the server it talks to.

    Private LAN, unique-local IPv6 and shared address space (100.64/10) are allowed
    unless `allow_private` is off (then only global addresses, and loopback when allowed).
    """

    peer: str = "server"  # "AI server", "webhook endpoint"
    allow_loopback: bool = False
    allow_private: bool = True

    def refusal(self, address: IPAddress) -> str | None:
        """Why the caller must not connect to `address`, or None if it may."""
        reason = address_refusal(address, allow_loopback=self.allow_loopback)
        if reason or self.allow_private:
            return reason
        for reached in reached_addresses(address):
            # Loopback got past address_refusal only under allow_loopback.
            if not reached.is_loopback and not reached.is_global:
                return "a private address"
        return None


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str  # ASCII host name (IDNA) or IP literal: used for Host, SNI and certificate checks
    port: int
    base_path: str  # without a trailing slash

    @property
    def origin(self) -> str:
        """The origin as browsers write it (RFC 6454): the scheme's default port left out."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        default_port = 443 if self.scheme == "https" else 80
        return f"{self.scheme}://{host}" if self.port == default_port else f"{self.scheme}://{host}:{self.port}"


class Deadline:
    """One budget of seconds for everything a fetch does."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.ends_at = time.monotonic() + seconds

    def remaining(self) -> float:
        left = self.ends_at - time.monotonic()
        if left <= 0:
            raise DeadlinePassed
        return left


# --- The URL ------------------------------------------------------------------------


def parse_url(url: str, *, peer: str = "server") -> Target:
    """Check the URL's syntax; no DNS. Raises UrlRefused."""
    if not isinstance(url, str) or not url.strip():
        raise UrlRefused(f"Enter the URL of the {peer}.")
    url = url.strip()
    if len(url) > MAX_URL_LENGTH:
        raise UrlRefused(f"The URL is longer than {MAX_URL_LENGTH} characters.")
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in url):
        raise UrlRefused("The URL must not contain spaces or control characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UrlRefused("The URL is not valid (check the host and port).") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UrlRefused("Only http:// and https:// URLs are allowed.")
    if "@" in parts.netloc:
        raise UrlRefused("The URL must not contain a user name or password.")
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        raise UrlRefused("The URL must not have a query string or fragment.")
    host = parts.hostname or ""
    if not host:
        raise UrlRefused("The URL needs a host.")
    if port == 0:
        raise UrlRefused("The URL's port is not valid.")
    if "[" in parts.netloc:
        if "%" in host:
            raise UrlRefused("IPv6 zone ids are not allowed in the URL.")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise UrlRefused("The URL's IPv6 address is not valid.") from None
    else:
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise UrlRefused("The URL's host name is not valid.") from None
        if not _HOST_NAME.match(host) or ".." in host:
            raise UrlRefused("The URL's host name is not valid.")
    path = parts.path.rstrip("/")
    if not _PATH.match(path):
        raise UrlRefused("The URL's path contains characters that are not allowed.")
    return Target(scheme=scheme, host=host, port=port or (443 if scheme == "https" else 80), base_path=path)


def literal_address(host: str) -> IPAddress | None:
    """The address a host that is an IP literal stands for, in any form getaddrinfo reads
    (`127.1`, `2130706433`, `0x7f000001`, `017700000001`); None for a host name."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _LEGACY_IPV4.match(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def is_localhost_name(host: str) -> bool:
    """`localhost` and its subdomains (RFC 6761), with or without the final dot."""
    name = host.rstrip(".")
    return name == "localhost" or name.endswith(".localhost")


# --- The addresses ------------------------------------------------------------------


def nat64_readings(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 address a NAT64 translator could read out of `address`, under each RFC 6052 layout.

    The prefix length a translator uses is its operator's choice, so every layout
    counts; suffix bits, which translators ignore, are ignored here too.
    """
    bits = int(address)
    readings = []
    for ranges in _NAT64_LAYOUTS.values():
        value = 0
        for start, end in ranges:
            width = end - start
            value = (value << width) | ((bits >> (128 - end)) & ((1 << width) - 1))
        reading = ipaddress.IPv4Address(value)
        if reading not in readings:
            readings.append(reading)
    return readings


def _meaningful_nat64_readings(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    # A reading in 0.0.0.0/8 is the zero bits of another layout (64:ff9b::8.8.8.8 read as
    # /32 is 0.0.0.0), unless nothing else is read.
    readings = nat64_readings(address)
    return [reading for reading in readings if reading not in _THIS_NETWORK] or readings


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries and would reach, if any (NAT64: see nat64_readings)."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    low32 = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _NAT64_SPACE or address in _IPV4_TRANSLATED:
        return low32
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _IPV4_COMPATIBLE and int(address) > 1:  # not :: nor ::1
        return low32
    return None


def reached_addresses(address: IPAddress) -> list[IPAddress]:
    """The address itself and the IPv4 address(es) an IPv6 form carries, as address_refusal reads them."""
    if not isinstance(address, ipaddress.IPv6Address):
        return [address]
    if address in _NAT64_SPACE:
        return [address, *_meaningful_nat64_readings(address)]
    inner = embedded_ipv4(address)
    return [address] if inner is None else [address, inner]


def address_refusal(address: IPAddress, *, allow_loopback: bool) -> str | None:
    """Why nothing may connect to `address`, or None if it may (private addresses pass: see Policy).

    Private LAN (10/8, 172.16/12, 192.168/16, fc00::/7) and shared address
    space (100.64/10) are allowed: self-hosted servers live there.
    """
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if isinstance(address, ipaddress.IPv6Address) and address in _NAT64_SPACE:
        # Refused if any layout's reading is.
        for reading in _meaningful_nat64_readings(address):
            reason = address_refusal(reading, allow_loopback=allow_loopback)
            if reason:
                return f"{reason} ({reading}, embedded in a NAT64 address)"
        return None
    if isinstance(address, ipaddress.IPv6Address):
        inner = embedded_ipv4(address)
        if inner is not None:
            reason = address_refusal(inner, allow_loopback=allow_loopback)
            return f"{reason} ({inner}, embedded in an IPv6 address)" if reason else None
    if address.is_unspecified or (isinstance(address, ipaddress.IPv4Address) and address in _THIS_NETWORK):
        return "an unspecified address"
    if address.is_loopback:
        return None if allow_loopback else "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if isinstance(address, ipaddress.IPv4Address):
        if address == _LIMITED_BROADCAST or address.is_reserved:
            return "a reserved address"
    elif address.is_reserved or address.is_site_local or address in _DISCARD_ONLY:
        return "a reserved address"
    return None


def _refusal_message(host: str, address: IPAddress, reason: str, policy: Policy) -> str:
    try:
        is_literal = ipaddress.ip_address(host) == address
    except ValueError:
        is_literal = False
    where = f"{host} is" if is_literal else f"{host} resolves to {address},"
    allowed = "a LAN or public address" if policy.allow_private else "a public address"
    return f"Refused: {where} {reason}; the {policy.peer} must be reachable at {allowed}."


def check_saved_url(url: str, *, policy: Policy) -> str:
    """Check a URL about to be saved: syntax, and IP literals or localhost names.

    Host names are NOT resolved here: DNS answers change, so the check that
    matters happens at every fetch, and saving must not wait on DNS.
    Returns the URL stripped of surrounding space. Raises UrlRefused (AddressRefused).
    """
    target = parse_url(url, peer=policy.peer)
    address = literal_address(target.host)
    if address is None and is_localhost_name(target.host):
        address = _LOCALHOST
    if address is not None:
        reason = policy.refusal(address)
        if reason:
            raise AddressRefused(_refusal_message(target.host, address, reason, policy))
    return url.strip()


def _getaddrinfo_within(host: str, port: int, deadline: Deadline) -> list[tuple]:
    # getaddrinfo has no timeout of its own: run it aside and stop waiting at the deadline.
    outcome: dict = {}

    def lookup() -> None:
        try:
            outcome["infos"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except Exception as exc:  # reported to the waiting request below
            outcome["error"] = exc

    worker = threading.Thread(target=lookup, name="guarded-fetch-dns", daemon=True)
    worker.start()
    worker.join(deadline.remaining())
    if worker.is_alive():
        raise DeadlinePassed
    if "error" in outcome:
        raise FetchFailed(f"Could not resolve the host name {host}.")
    return outcome["infos"]


def resolve_checked(target: Target, deadline: Deadline, *, policy: Policy) -> list[IPAddress]:
    """Every address of the host, each checked; raises AddressRefused if any is refused."""
    address = literal_address(target.host)
    if address is not None:
        addresses = [address]
    else:
        addresses = []
        for info in _getaddrinfo_within(target.host, target.port, deadline):
            resolved = ipaddress.ip_address(info[4][0])
            if resolved not in addresses:
                addresses.append(resolved)
    if not addresses:
        raise FetchFailed(f"The host name {target.host} has no address.")
    for resolved in addresses:
        reason = policy.refusal(resolved)
        if reason:
            raise AddressRefused(_refusal_message(target.host, resolved, reason, policy))
    return addresses


# --- The connection -----------------------------------------------------------------


class _DeadlineIO:
    """Every read and write waits only for what is left of the deadline."""

    deadline: Deadline

    def recv_into(self, *args, **kwargs):
        self.settimeout(self.deadline.remaining())
        return super().recv_into(*args, **kwargs)

    def recv(self, *args, **kwargs):
        self.settimeout(self.deadline.remaining())
        return super().recv(*args, **kwargs)

    def sendall(self, *args, **kwargs):
        self.settimeout(self.deadline.remaining())
        return super().sendall(*args, **kwargs)


class _DeadlineSocket(_DeadlineIO, socket.socket):
    pass


class _DeadlineSSLSocket(_DeadlineIO, ssl.SSLSocket):
    pass


def _tls_context() -> ssl.SSLContext:
    """System trust store, certificate and host name verified (tests add their own CA)."""
    context = ssl.create_default_context()
    context.sslsocket_class = _DeadlineSSLSocket
    return context


def _connect(address: IPAddress, port: int, deadline: Deadline) -> socket.socket:
    """Open a TCP connection to one checked address: the only place this module connects."""
    if isinstance(address, ipaddress.IPv4Address):
        sock, sockaddr = _DeadlineSocket(socket.AF_INET, socket.SOCK_STREAM), (str(address), port)
    else:
        sock, sockaddr = _DeadlineSocket(socket.AF_INET6, socket.SOCK_STREAM), (str(address), port, 0, 0)
    sock.deadline = deadline
    try:
        sock.settimeout(deadline.remaining())
        sock.connect(sockaddr)
    except BaseException:
        sock.close()
        raise
    return sock


def _open(target: Target, addresses: list[IPAddress], deadline: Deadline, *, peer: str) -> socket.socket:
    last_error: OSError | None = None
    for address in addresses:
        try:
            return _connect(address, target.port, deadline)
        except TimeoutError:
            raise DeadlinePassed from None
        except OSError as exc:
            last_error = exc
    reason = getattr(last_error, "strerror", None) or str(last_error)
    raise FetchFailed(f"Could not connect to the {peer} at {target.origin}: {reason}.")


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """http.client on a socket that is already open to a checked address: it never resolves."""

    def __init__(self, target: Target, sock: socket.socket):
        super().__init__(target.host, target.port)
        self._pinned_sock = sock

    def connect(self) -> None:
        self.sock = self._pinned_sock


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, target: Target, sock: socket.socket, deadline: Deadline):
        super().__init__(target.host, target.port, context=_tls_context())
        self._pinned_sock = sock
        self._deadline = deadline

    def connect(self) -> None:
        # The handshake is bounded by the time left (CPython applies a socket's
        # timeout to the whole handshake); the certificate must match the host name.
        self._pinned_sock.settimeout(self._deadline.remaining())
        tls_sock = self._context.wrap_socket(self._pinned_sock, server_hostname=self.host)
        tls_sock.deadline = self._deadline
        self.sock = tls_sock


@contextmanager
def pinned_connection(
    target: Target, addresses: list[IPAddress], deadline: Deadline, *, peer: str = "server"
) -> Iterator[http.client.HTTPConnection]:
    """An HTTP(S) connection to the first of `addresses` (checked ones) that answers, closed on exit.

    Raises FetchFailed when none can be connected to, DeadlinePassed when time runs out;
    what the connection raises afterwards (ssl.SSLError, http.client.HTTPException,
    OSError, DeadlinePassed) is the caller's to describe.
    """
    sock = _open(target, addresses, deadline, peer=peer)
    if target.scheme == "https":
        conn: http.client.HTTPConnection = _PinnedHTTPSConnection(target, sock, deadline)
    else:
        conn = _PinnedHTTPConnection(target, sock)
    try:
        yield conn
    finally:
        conn.close()
        sock.close()


def read_limited(response: http.client.HTTPResponse, max_bytes: int) -> bytes:
    """The answer's body, or BodyTooLarge as soon as it says or proves it is larger than `max_bytes`."""
    declared = response.getheader("Content-Length")
    if declared and declared.strip().isdigit() and int(declared) > max_bytes:
        raise BodyTooLarge
    body = bytearray()
    while chunk := response.read(min(65536, max_bytes + 1 - len(body))):
        body += chunk
        if len(body) > max_bytes:
            raise BodyTooLarge
    return bytes(body)
