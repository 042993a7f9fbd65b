"""A new secret, held for the one page that shows it (POST, redirect, GET).

Between the POST that makes a secret (an API key, a rotated key, an enrollment
token) and the page that shows it, the secret is held only server-side: in the
cache (Redis when configured, so every web process sees it), encrypted with a
key derived from SECRET_KEY, for at most REVEAL_SECONDS, under a name bound to
the browser session that made it. Showing it deletes it, so a reload, a second
tab or a replayed URL finds nothing, and nothing creates another secret.
It is never put in a cookie, a message, the session or a log.
"""

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest

REVEAL_SECONDS = 300
_CONTEXT = b"haltless.core.reveal"


def _cipher() -> Fernet:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_CONTEXT).derive(settings.SECRET_KEY.encode())
    return Fernet(base64.urlsafe_b64encode(derived))


def _slot(request: HttpRequest, purpose: str, object_id) -> str:
    # The session key itself is a credential: only its digest goes into the cache key.
    session = hashlib.sha256((request.session.session_key or "").encode()).hexdigest()
    return f"reveal:{purpose}:{object_id}:{request.user.pk}:{session}"


class RevealedSecret:
    """The secret for a template: renders as itself, but its repr hides it.

    Django logs a template context's repr at DEBUG (django.template, on a failed
    variable lookup), so a plain string there would end up in the logs.
    """

    __slots__ = ("_secret",)

    def __init__(self, secret: str):
        self._secret = secret

    def __str__(self) -> str:
        return self._secret

    def __repr__(self) -> str:
        return "<secret, not shown in logs>"


def reveal_hold(*, request: HttpRequest, purpose: str, object_id, secret: str) -> None:
    if request.session.session_key is None:
        request.session.save()
    token = _cipher().encrypt(secret.encode())
    cache.set(_slot(request, purpose, object_id), token, timeout=REVEAL_SECONDS)


def reveal_take(*, request: HttpRequest, purpose: str, object_id) -> RevealedSecret | None:
    """The held secret, once: the first caller gets it and it is gone; everyone else gets None."""
    slot = _slot(request, purpose, object_id)
    token = cache.get(slot)
    # delete() says whether it removed the entry, so of two reloads at once only one shows it.
    if token is None or not cache.delete(slot):
        return None
    try:
        return RevealedSecret(_cipher().decrypt(token, ttl=REVEAL_SECONDS).decode())
    except InvalidToken:
        return None
