"""GitHub's secret-scanning partner alerts: who signed them.

GitHub signs the raw body of each alert with ECDSA P-256 / SHA-256 and sends
`Github-Public-Key-Identifier` and `Github-Public-Key-Signature` (base64 of
the DER signature). The public keys it may use are configuration
(`GITHUB_SECRET_SCANNING_KEYS`: identifier -> PEM), never fetched at run time,
so a test can sign with a key pair of its own.
"""

import base64
import binascii
from functools import lru_cache

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from django.conf import settings

BAD_SIGNATURE = "Missing or invalid GitHub signature."


@lru_cache(maxsize=32)
def _public_key(pem: str) -> ec.EllipticCurvePublicKey | None:
    try:
        key = load_pem_public_key(pem.encode())
    except ValueError:
        return None
    return key if isinstance(key, ec.EllipticCurvePublicKey) else None


def signature_is_valid(*, body: bytes, key_identifier: str | None, signature: str | None) -> bool:
    """Whether `body` was signed by the trusted GitHub key named `key_identifier`."""
    if not key_identifier or not signature:
        return False
    pem = settings.GITHUB_SECRET_SCANNING_KEYS.get(key_identifier)
    public_key = _public_key(pem) if isinstance(pem, str) else None
    if public_key is None:
        return False
    try:
        der = base64.b64decode(signature, validate=True)
        public_key.verify(der, body, ec.ECDSA(hashes.SHA256()))
    except (binascii.Error, ValueError, InvalidSignature):
        return False
    return True
