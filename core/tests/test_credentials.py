"""core.credentials: the one description of a Haltless credential's shape."""

from apikeys import keys
from core import credentials


def test_the_prefixes_and_the_layout():
    assert credentials.PREFIXES == ("hlts_", "hlte_")
    assert credentials.LENGTH == 43
    assert all(prefix.startswith(credentials.MARKER) for prefix in credentials.PREFIXES)


def test_the_secret_pattern_finds_every_kind_of_credential_and_keeps_its_prefix():
    for prefix in credentials.PREFIXES:
        secret = keys.generate_key(prefix)
        assert credentials.SECRET.sub(r"\1***", f"key={secret}!") == f"key={prefix}***!"
    assert credentials.SECRET.search("hlts_short") is None
    assert credentials.SECRET.search("hltx_0123456789abcdef") is None


def test_api_key_shaped_text_and_bytes():
    key = keys.generate_key()
    assert credentials.is_api_key_shaped(key) and credentials.is_api_key_shaped(key.encode())
    assert not credentials.is_api_key_shaped(keys.generate_key(keys.ENROLLMENT_TOKEN_PREFIX))
    assert not credentials.is_api_key_shaped(b"eyJhbGciOiJIUzI1NiJ9.eyJ.x")
