"""A stand-in for GitHub's secret scanning in tests: a key pair of our own, and a client that signs."""

import base64

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.test import override_settings
from rest_framework.test import APIClient

KEY_IDENTIFIER = "test-github-key-1"
PRIVATE_KEY = ec.generate_private_key(ec.SECP256R1())


def public_pem(private_key=PRIVATE_KEY) -> str:
    return (
        private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def sign(body: bytes, private_key=PRIVATE_KEY) -> str:
    return base64.b64encode(private_key.sign(body, ec.ECDSA(hashes.SHA256()))).decode()


class GithubSigningClient(APIClient):
    """Signs every request's raw body as GitHub would, with this module's key trusted meanwhile."""

    def generic(self, method, path, data="", content_type="application/octet-stream", secure=False, **extra):
        body = data.encode() if isinstance(data, str) else bytes(data or b"")
        extra.setdefault("HTTP_GITHUB_PUBLIC_KEY_IDENTIFIER", KEY_IDENTIFIER)
        extra.setdefault("HTTP_GITHUB_PUBLIC_KEY_SIGNATURE", sign(body))
        with override_settings(GITHUB_SECRET_SCANNING_KEYS={KEY_IDENTIFIER: public_pem()}):
            return super().generic(method, path, body, content_type, secure, **extra)
