"""Facts about the HTTP request that every app reads the same way."""

import ipaddress

from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str | None:
    """The address of whoever made the request: REMOTE_ADDR, nothing else.

    Headers such as X-Forwarded-For are set by the client unless a proxy
    overwrites them, so trusting them here would let anyone write any address
    into the audit log and the throttle keys. Behind a reverse proxy, have the
    proxy hand the client address to the server so that it lands in
    REMOTE_ADDR: gunicorn `--proxy-protocol --proxy-allow-from=<proxy address>`
    with the proxy speaking PROXY protocol (gunicorn's `--forwarded-allow-ips`
    only governs the scheme headers, not REMOTE_ADDR).
    Returns None when the value is missing or not an IP address, so it can go
    straight into a GenericIPAddressField.
    """
    # DRF's Request proxies META to the underlying HttpRequest.
    remote_addr = request.META.get("REMOTE_ADDR") or ""
    try:
        return str(ipaddress.ip_address(remote_addr.strip()))
    except ValueError:
        return None
