"""Encryption at rest for the tenant's custom AI API key.

The key must be sent to the tenant's AI server, so it cannot be hashed like
our own API keys; it is encrypted with a key derived from SECRET_KEY (Fernet:
AES-128-CBC with an HMAC). A database dump alone does not reveal it. Keys
listed in SECRET_KEY_FALLBACKS still decrypt, so the secret key can be rotated.
"""

import base64

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

_CONTEXT = b"haltless.settings_app.custom_ai_api_key"


def _fernet_for(secret_key: str) -> Fernet:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_CONTEXT).derive(secret_key.encode())
    return Fernet(base64.urlsafe_b64encode(derived))


def _cipher() -> MultiFernet:
    keys = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return MultiFernet([_fernet_for(key) for key in keys])


def encrypt_secret(plaintext: str) -> str:
    return _cipher().encrypt(plaintext.encode()).decode()


def decrypt_secret(token: str) -> str | None:
    """The plaintext, or None when it cannot be decrypted (e.g. the secret key changed)."""
    try:
        return _cipher().decrypt(token.encode()).decode()
    except (InvalidToken, UnicodeDecodeError):
        return None
