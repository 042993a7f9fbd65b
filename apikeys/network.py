"""Network allowlists of API keys: parsing `allowed_cidrs` and checking a client address.

Strict notation: a network with host bits set (`10.0.0.1/8`) is refused rather
than silently widened or narrowed, because either guess could open a key to
addresses its admin did not mean. A bare address means that one host (/32 or
/128). An IPv4-mapped IPv6 client (`::ffff:10.0.0.5`, what a dual-stack socket
reports) is matched against the IPv4 networks.
"""

import ipaddress
from collections.abc import Iterable
from functools import lru_cache

MAX_ALLOWED_CIDRS = 50
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DENIED = "API key is not allowed from {ip}."
NOT_A_LIST = 'Expected a list of networks, e.g. ["10.20.0.0/16", "2001:db8::/48"].'
TOO_MANY = f"At most {MAX_ALLOWED_CIDRS} networks."
BAD_NETWORK = "{value!r} is not an IPv4 or IPv6 address or network."
HOST_BITS = "{value!r} has host bits set; did you mean {network}?"


def parse_allowed_cidrs(value: object) -> list[str]:
    """The normalised, de-duplicated networks of `value`; ValueError with every problem otherwise."""
    if not isinstance(value, list | tuple):
        raise ValueError([NOT_A_LIST])
    problems: list[str] = []
    networks: list[str] = []
    for entry in value:
        if not isinstance(entry, str) or not entry.strip():
            problems.append(BAD_NETWORK.format(value=entry))
            continue
        text = entry.strip()
        try:
            network = ipaddress.ip_network(text, strict=True)
        except ValueError:
            try:
                loose = ipaddress.ip_network(text, strict=False)
            except ValueError:
                problems.append(BAD_NETWORK.format(value=entry))
            else:
                problems.append(HOST_BITS.format(value=entry, network=loose))
            continue
        networks.append(str(network))
    networks = list(dict.fromkeys(networks))
    if len(networks) > MAX_ALLOWED_CIDRS:
        problems.insert(0, TOO_MANY)
    if problems:
        raise ValueError(problems)
    return networks


@lru_cache(maxsize=4096)
def _compiled(cidrs: tuple[str, ...]) -> tuple[tuple[IPNetwork, ...], tuple[IPNetwork, ...]]:
    """IPv4 and IPv6 networks of a stored allowlist, parsed once per process."""
    networks = [ipaddress.ip_network(cidr) for cidr in cidrs]
    return (
        tuple(n for n in networks if n.version == 4),
        tuple(n for n in networks if n.version == 6),
    )


def is_allowed(client_ip: str | None, allowed_cidrs: Iterable[str]) -> bool:
    """Whether a key with this allowlist may be used from `client_ip` (an empty list allows anywhere)."""
    cidrs = tuple(allowed_cidrs)
    if not cidrs:
        return True
    if client_ip is None:
        return False
    try:
        address = ipaddress.ip_address(client_ip)
    except ValueError:
        return False
    v4, v6 = _compiled(cidrs)
    if address.version == 6:
        mapped = address.ipv4_mapped
        if mapped is not None and any(mapped in network for network in v4):
            return True
        return any(address in network for network in v6)
    return any(address in network for network in v4)


@lru_cache(maxsize=4096)
def observed_network(client_ip: str) -> str:
    """How observed addresses are grouped: an IPv4 address as itself, IPv6 by its /64."""
    address = ipaddress.ip_address(client_ip)
    if address.version == 6:
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)
