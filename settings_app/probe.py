"""Ask a tenant's AI server which models it has, without becoming an SSRF tool.

The URL is chosen by a user, so the request it causes follows strict rules:

1. The URL is parsed: http or https only, a host, no user name or password,
   no query or fragment.
2. The host is resolved once (an IP literal in any form getaddrinfo accepts,
   such as `127.1` or `0x7f000001`, is parsed without DNS). EVERY address it
   resolves to is checked (`address_refusal`); one refused address refuses the
   whole URL. IPv6 forms that embed an IPv4 address (`::ffff:a.b.c.d`, NAT64,
   6to4, Teredo, IPv4-compatible) are judged by the IPv4 address inside.
3. The connection is opened by this module, to a checked address only; the
   HTTP client is handed that socket and never resolves the name again, so a
   DNS answer that changes between check and use (rebinding) cannot redirect
   it. The Host header and the TLS server name (SNI) stay the original host
   name, and the certificate is verified against that name.
4. Redirects are not followed, at most MAX_RESPONSE_BYTES are read, and the
   whole probe (lookup, connects, TLS, both requests, every read) shares one
   deadline of PROBE_DEADLINE_SECONDS: each socket read waits only for what is
   left of it, so a server that drips bytes cannot stretch it.

The standard library (socket, ssl, http.client) is used rather than an HTTP
library because the pinning must be explicit and visible here: a library that
resolves and connects by itself would need hooks to do the same, and a hook
that is missed silently re-opens the hole.
"""

import http.client
import ipaddress
import json
import logging
import re
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from django.conf import settings

logger = logging.getLogger(__name__)

# One deadline for the whole probe; tests may lower it.
PROBE_DEADLINE_SECONDS = 5.0
MAX_RESPONSE_BYTES = 1024 * 1024
MAX_URL_LENGTH = 2048
USER_AGENT = "Haltless-AI-Probe/1.0"

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
_MODEL_NAME_MAX = 256


class ProbeRefused(Exception):
    """The URL, or an address its host resolves to, is not allowed (HTTP 400)."""


class AddressRefused(ProbeRefused):
    """An address the host is, or resolves to, is refused by the address rules.

    The message says which address and why, for the server's log; the API
    answers one fixed text, so that refusals do not map the network.
    """


class ProbeFailed(Exception):
    """The server could not be reached or gave no usable model list (HTTP 502).

    The message is the reason, for the server's log only; `origin` is what the
    API may name.
    """

    def __init__(self, reason: str, origin: str = ""):
        super().__init__(reason)
        self.origin = origin


class _DeadlinePassed(Exception):
    pass


class _Unusable(Exception):
    """An HTTP answer that is not the model list asked for: try the next kind of server."""


@dataclass(frozen=True)
class ProbeTarget:
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


@dataclass(frozen=True)
class ProbeResult:
    provider_type: str  # "ollama" or "openai"
    models: list[dict] = field(default_factory=list)


class _Deadline:
    def __init__(self, seconds: float):
        self.seconds = seconds
        self.ends_at = time.monotonic() + seconds

    def remaining(self) -> float:
        left = self.ends_at - time.monotonic()
        if left <= 0:
            raise _DeadlinePassed
        return left


# --- The URL ------------------------------------------------------------------------


def parse_url(url: str) -> ProbeTarget:
    """Check the URL's syntax; no DNS. Raises ProbeRefused."""
    if not isinstance(url, str) or not url.strip():
        raise ProbeRefused("Enter the URL of the AI server.")
    url = url.strip()
    if len(url) > MAX_URL_LENGTH:
        raise ProbeRefused(f"The URL is longer than {MAX_URL_LENGTH} characters.")
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in url):
        raise ProbeRefused("The URL must not contain spaces or control characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ProbeRefused("The URL is not valid (check the host and port).") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ProbeRefused("Only http:// and https:// URLs are allowed.")
    if "@" in parts.netloc:
        raise ProbeRefused("The URL must not contain a user name or password.")
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        raise ProbeRefused("The URL must not have a query string or fragment.")
    host = parts.hostname or ""
    if not host:
        raise ProbeRefused("The URL needs a host.")
    if port == 0:
        raise ProbeRefused("The URL's port is not valid.")
    if "[" in parts.netloc:
        if "%" in host:
            raise ProbeRefused("IPv6 zone ids are not allowed in the URL.")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ProbeRefused("The URL's IPv6 address is not valid.") from None
    else:
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise ProbeRefused("The URL's host name is not valid.") from None
        if not _HOST_NAME.match(host) or ".." in host:
            raise ProbeRefused("The URL's host name is not valid.")
    path = parts.path.rstrip("/")
    if not _PATH.match(path):
        raise ProbeRefused("The URL's path contains characters that are not allowed.")
    return ProbeTarget(scheme=scheme, host=host, port=port or (443 if scheme == "https" else 80), base_path=path)


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


def _is_localhost_name(host: str) -> bool:
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


def address_refusal(address: IPAddress, *, allow_loopback: bool) -> str | None:
    """Why the probe must not connect to `address`, or None if it may.

    Private LAN (10/8, 172.16/12, 192.168/16, fc00::/7) and shared address
    space (100.64/10) are allowed: self-hosted AI servers live there.
    """
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if isinstance(address, ipaddress.IPv6Address) and address in _NAT64_SPACE:
        # Refused if any layout's reading is; a reading in 0.0.0.0/8 is the zero bits of
        # another layout (64:ff9b::8.8.8.8 read as /32 is 0.0.0.0), unless nothing else is read.
        readings = nat64_readings(address)
        meaningful = [reading for reading in readings if reading not in _THIS_NETWORK] or readings
        for reading in meaningful:
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


def _refusal_message(host: str, address: IPAddress, reason: str) -> str:
    try:
        is_literal = ipaddress.ip_address(host) == address
    except ValueError:
        is_literal = False
    where = f"{host} is" if is_literal else f"{host} resolves to {address},"
    return f"Refused: {where} {reason}; the AI server must be reachable at a LAN or public address."


def validate_saved_url(url: str, *, allow_loopback: bool | None = None) -> str:
    """Check a URL about to be saved: syntax, and IP literals or localhost names.

    Host names are NOT resolved here: DNS answers change, so the check that
    matters happens at every probe, and saving must not wait on DNS.
    Returns the URL stripped of surrounding space. Raises ProbeRefused.
    """
    if allow_loopback is None:
        allow_loopback = settings.AI_PROBE_ALLOW_LOOPBACK
    target = parse_url(url)
    address = literal_address(target.host)
    if address is not None:
        reason = address_refusal(address, allow_loopback=allow_loopback)
        if reason:
            raise AddressRefused(_refusal_message(target.host, address, reason))
    elif _is_localhost_name(target.host) and not allow_loopback:
        raise AddressRefused(_refusal_message(target.host, ipaddress.ip_address("127.0.0.1"), "a loopback address"))
    return url.strip()


def _getaddrinfo_within(host: str, port: int, deadline: _Deadline) -> list[tuple]:
    # getaddrinfo has no timeout of its own: run it aside and stop waiting at the deadline.
    outcome: dict = {}

    def lookup() -> None:
        try:
            outcome["infos"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except Exception as exc:  # reported to the waiting request below
            outcome["error"] = exc

    worker = threading.Thread(target=lookup, name="ai-probe-dns", daemon=True)
    worker.start()
    worker.join(deadline.remaining())
    if worker.is_alive():
        raise _DeadlinePassed
    if "error" in outcome:
        raise ProbeFailed(f"Could not resolve the host name {host}.")
    return outcome["infos"]


def resolve_checked(target: ProbeTarget, deadline: _Deadline, *, allow_loopback: bool) -> list[IPAddress]:
    """Every address of the host, each checked; raises ProbeRefused if any is refused."""
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
        raise ProbeFailed(f"The host name {target.host} has no address.")
    for resolved in addresses:
        reason = address_refusal(resolved, allow_loopback=allow_loopback)
        if reason:
            raise AddressRefused(_refusal_message(target.host, resolved, reason))
    return addresses


# --- The connection -----------------------------------------------------------------


class _DeadlineIO:
    """Every read and write waits only for what is left of the probe's deadline."""

    deadline: _Deadline

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


def _connect(address: IPAddress, port: int, deadline: _Deadline) -> socket.socket:
    """Open a TCP connection to one checked address: the only place the probe connects."""
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


def _open(target: ProbeTarget, addresses: list[IPAddress], deadline: _Deadline) -> socket.socket:
    last_error: OSError | None = None
    for address in addresses:
        try:
            return _connect(address, target.port, deadline)
        except TimeoutError:
            raise _DeadlinePassed from None
        except OSError as exc:
            last_error = exc
    reason = getattr(last_error, "strerror", None) or str(last_error)
    raise ProbeFailed(f"Could not connect to the AI server at {target.origin}: {reason}.")


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """http.client on a socket that is already open to a checked address: it never resolves."""

    def __init__(self, target: ProbeTarget, sock: socket.socket):
        super().__init__(target.host, target.port)
        self._pinned_sock = sock

    def connect(self) -> None:
        self.sock = self._pinned_sock


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, target: ProbeTarget, sock: socket.socket, deadline: _Deadline):
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


@dataclass
class _Answer:
    status: int
    body: bytes


def _get(target: ProbeTarget, addresses: list[IPAddress], path: str, deadline: _Deadline, api_key: str | None):
    sock = _open(target, addresses, deadline)
    if target.scheme == "https":
        conn = _PinnedHTTPSConnection(target, sock, deadline)
    else:
        conn = _PinnedHTTPConnection(target, sock)
    headers = {"Accept": "application/json", "User-Agent": USER_AGENT, "Connection": "close"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    try:
        conn.request("GET", path or "/", headers=headers)
        response = conn.getresponse()
        if not 200 <= response.status < 300:
            return _Answer(response.status, b"")
        declared = response.getheader("Content-Length")
        if declared and declared.strip().isdigit() and int(declared) > MAX_RESPONSE_BYTES:
            raise ProbeFailed(_too_large())
        body = bytearray()
        while chunk := response.read(min(65536, MAX_RESPONSE_BYTES + 1 - len(body))):
            body += chunk
            if len(body) > MAX_RESPONSE_BYTES:
                raise ProbeFailed(_too_large())
        return _Answer(response.status, bytes(body))
    finally:
        conn.close()
        sock.close()


def _too_large() -> str:
    return f"The AI server's answer is larger than {MAX_RESPONSE_BYTES // 1024} KiB; it is not a model list."


# --- The model lists ----------------------------------------------------------------


def _json(body: bytes):
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _Unusable("the answer is not JSON") from None


def _valid_name(value) -> bool:
    return isinstance(value, str) and 0 < len(value) <= _MODEL_NAME_MAX and value.isprintable()


def _parse_ollama(body: bytes) -> list[dict]:
    data = _json(body)
    items = data.get("models") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise _Unusable("the answer is not an Ollama model list")
    models = []
    for item in items:
        if not isinstance(item, dict) or not _valid_name(item.get("name")):
            raise _Unusable("the answer is not an Ollama model list")
        model = {"name": item["name"]}
        if isinstance(item.get("size"), int) and not isinstance(item["size"], bool):
            model["size"] = item["size"]
        if isinstance(item.get("modified_at"), str) and len(item["modified_at"]) <= 64:
            model["modified_at"] = item["modified_at"]
        models.append(model)
    return models


def _parse_openai(body: bytes) -> list[dict]:
    data = _json(body)
    items = data.get("data") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise _Unusable("the answer is not an OpenAI-compatible model list")
    models = []
    for item in items:
        if not isinstance(item, dict) or not _valid_name(item.get("id")):
            raise _Unusable("the answer is not an OpenAI-compatible model list")
        model = {"name": item["id"]}
        if _valid_name(item.get("owned_by")):
            model["owned_by"] = item["owned_by"]
        models.append(model)
    return models


_PARSERS = {"ollama": _parse_ollama, "openai": _parse_openai}


def _candidates(base_path: str) -> list[tuple[str, str]]:
    """Which kinds of server to ask, in order, and where their model list is."""
    if base_path.endswith("/v1"):
        return [("openai", f"{base_path}/models")]
    return [("ollama", f"{base_path}/api/tags"), ("openai", f"{base_path}/v1/models")]


def _ask(target, addresses, provider_type: str, path: str, deadline, api_key) -> list[dict]:
    answer = _get(target, addresses, path, deadline, api_key)
    if 300 <= answer.status < 400:
        raise _Unusable(f"HTTP {answer.status}: redirects are not followed")
    if not 200 <= answer.status < 300:
        raise _Unusable(f"HTTP {answer.status}")
    return _PARSERS[provider_type](answer.body)


def probe_models(url: str, *, api_key: str | None = None, allow_loopback: bool | None = None) -> ProbeResult:
    """Ask the server at `url` for its models: Ollama first, then OpenAI-compatible.

    Raises ProbeRefused (the URL or an address is not allowed) or ProbeFailed
    (unreachable, too slow, too large, or no model list). Error details never
    echo the server's answer, so the probe cannot be used to read other services.
    """
    if allow_loopback is None:
        allow_loopback = settings.AI_PROBE_ALLOW_LOOPBACK
    target = parse_url(url)
    try:
        return _probe(target, api_key=api_key, allow_loopback=allow_loopback)
    except ProbeFailed as exc:
        raise ProbeFailed(str(exc), origin=target.origin) from None
    except ProbeRefused:
        raise
    except Exception as exc:  # anything else a hostile server provokes is a failure too, not a 500
        logger.exception("AI probe of %s failed unexpectedly", target.origin)
        raise ProbeFailed(f"unexpected {type(exc).__name__}", origin=target.origin) from None


def _probe(target: ProbeTarget, *, api_key: str | None, allow_loopback: bool) -> ProbeResult:
    deadline = _Deadline(PROBE_DEADLINE_SECONDS)
    unusable: list[str] = []
    try:
        addresses = resolve_checked(target, deadline, allow_loopback=allow_loopback)
        for provider_type, path in _candidates(target.base_path):
            try:
                models = _ask(target, addresses, provider_type, path, deadline, api_key)
            except _Unusable as exc:
                unusable.append(f"{path}: {exc}")
                continue
            logger.info("AI probe of %s found %d %s models", target.origin, len(models), provider_type)
            return ProbeResult(provider_type=provider_type, models=models)
    except (_DeadlinePassed, TimeoutError):
        raise ProbeFailed(
            f"The AI server at {target.origin} did not answer within {deadline.seconds:g} seconds."
        ) from None
    except ssl.SSLCertVerificationError as exc:
        raise ProbeFailed(
            f"The TLS certificate of {target.origin} could not be verified: {exc.verify_message}."
        ) from None
    except ssl.SSLError:
        raise ProbeFailed(f"The TLS handshake with {target.origin} failed.") from None
    except (http.client.HTTPException, ConnectionError):
        raise ProbeFailed(f"The AI server at {target.origin} did not give a valid HTTP answer.") from None
    except OSError as exc:
        raise ProbeFailed(f"The connection to {target.origin} failed: {exc.strerror or exc}.") from None
    raise ProbeFailed(
        f"{target.origin}{target.base_path} is not an Ollama or OpenAI-compatible server ({'; '.join(unusable)})."
    )
