"""Key format and digest (the prefixes, alphabet and lengths live in core.credentials).

A key is `hlts_` + 32 random base62 characters (32 x log2(62) = 190.5 bits) +
a 6-character base62 CRC32 of those 32, as GitHub's tokens do: a mistyped or
invented key is refused without a database query, and secret scanners can tell
a real key by its checksum. With 190 bits of entropy a fast SHA-256 digest is
as safe to store as a slow password hash (nobody can enumerate the input
space), and costs about a microsecond per request instead of PBKDF2's ~0.5 s.
It is deliberately not keyed with SECRET_KEY, so rotating that secret does not
invalidate every API key.
"""

import hashlib
import hmac
import secrets
import zlib

from core import credentials

KEY_PREFIX = credentials.API_KEY_PREFIX
ENROLLMENT_TOKEN_PREFIX = credentials.ENROLLMENT_TOKEN_PREFIX
BASE62 = credentials.BASE62
RANDOM_LENGTH = credentials.RANDOM_LENGTH
CHECKSUM_LENGTH = credentials.CHECKSUM_LENGTH
KEY_LENGTH = credentials.LENGTH
DISPLAY_PREFIX_LENGTH = 12
_BASE62_SET = frozenset(BASE62)


def _base62(number: int, width: int) -> str:
    chars = []
    while number:
        number, rem = divmod(number, 62)
        chars.append(BASE62[rem])
    return "".join(reversed(chars)).rjust(width, "0")


def _checksum(random_part: str) -> str:
    return _base62(zlib.crc32(random_part.encode()), CHECKSUM_LENGTH)


def build_key(random_part: str, prefix: str = KEY_PREFIX) -> str:
    """A key from its random part: the prefix in front, the checksum behind."""
    return prefix + random_part + _checksum(random_part)


def generate_key(prefix: str = KEY_PREFIX) -> str:
    return build_key("".join(secrets.choice(BASE62) for _ in range(RANDOM_LENGTH)), prefix)


def is_well_formed(key: str, prefix: str = KEY_PREFIX) -> bool:
    """Right prefix, length, alphabet and checksum; no database needed."""
    if len(key) != KEY_LENGTH or not key.startswith(prefix):
        return False
    body = key[len(prefix) :]
    if not _BASE62_SET.issuperset(body):
        return False
    random_part, checksum = body[:RANDOM_LENGTH], body[RANDOM_LENGTH:]
    return hmac.compare_digest(_checksum(random_part), checksum)


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def matches(key: str, stored_digest: str) -> bool:
    """Whether `key` is the key behind `stored_digest`, in constant time."""
    return hmac.compare_digest(digest(key), stored_digest)


def display_prefix(key: str) -> str:
    return key[:DISPLAY_PREFIX_LENGTH]
