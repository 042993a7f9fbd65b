"""Facts about the HTTP request that every app reads the same way."""

import ipaddress
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


def _is_trusted_proxy(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    proxies = _networks(tuple(settings.TRUSTED_PROXIES))
    if not proxies:
        return False
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in proxies)


def _parse(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    value = value.strip()
    # Some proxies write an IPv6 address in brackets, or add a port to an IPv4 one.
    if value.startswith("[") and "]" in value:
        value = value[1 : value.index("]")]
    elif value.count(":") == 1:
        value = value.split(":", 1)[0]
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def _text(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    # An IPv4-mapped IPv6 address as people write it (::ffff:10.0.0.5), not as hex (::ffff:a00:5).
    if address.version == 6 and address.ipv4_mapped is not None:
        return f"::ffff:{address.ipv4_mapped}"
    return str(address)


def client_ip(request: HttpRequest) -> str | None:
    """The address of whoever made the request; every app (audit, throttles, allowlists) asks here.

    REMOTE_ADDR, unless it is a proxy listed in TRUSTED_PROXIES (empty by
    default): then X-Forwarded-For is read right to left, each trusted proxy
    vouching for the hop before it, and the first address that is not a
    trusted proxy is the client. A client writes whatever it likes into
    X-Forwarded-For, so without TRUSTED_PROXIES the header is never read, and
    with it only the entries appended by trusted proxies count. An entry that
    is not an address ends the walk at the proxy that wrote it.
    Returns None when there is no usable address, so it can go straight into a
    GenericIPAddressField.
    """
    # DRF's Request proxies META to the underlying HttpRequest.
    meta = request.META
    peer = _parse(meta.get("REMOTE_ADDR") or "")
    if peer is None:
        return None
    if not settings.TRUSTED_PROXIES or not _is_trusted_proxy(peer):
        return _text(peer)
    forwarded = meta.get("HTTP_X_FORWARDED_FOR") or ""
    for entry in reversed(forwarded.split(",")):
        hop = _parse(entry)
        if hop is None:
            break
        peer = hop
        if not _is_trusted_proxy(hop):
            break
    return _text(peer)
