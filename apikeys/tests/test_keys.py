import math
import re

import pytest

from apikeys import keys

KEY_RE = re.compile(r"^hlts_[0-9A-Za-z]{38}$")


def _replace_at(key: str, index: int) -> str:
    """`key` with the character at `index` changed to another base62 character."""
    replacement = "a" if key[index] != "a" else "b"
    return key[:index] + replacement + key[index + 1 :]


class TestGeneratedKeys:
    def test_format_is_prefix_random_part_and_checksum(self):
        key = keys.generate_key()
        assert KEY_RE.match(key)
        assert len(key) == keys.KEY_LENGTH == 5 + 32 + 6

    def test_random_part_carries_at_least_190_bits(self):
        assert keys.RANDOM_LENGTH * math.log2(len(keys.BASE62)) >= 190
        assert len(set(keys.BASE62)) == 62

    def test_keys_are_well_formed_and_distinct(self):
        generated = {keys.generate_key() for _ in range(500)}
        assert len(generated) == 500
        assert all(keys.is_well_formed(key) for key in generated)

    def test_display_prefix_is_the_first_12_characters(self):
        key = keys.generate_key()
        assert keys.display_prefix(key) == key[:12]
        assert keys.display_prefix(key).startswith("hlts_")


class TestChecksum:
    def test_every_single_character_change_after_the_prefix_is_refused(self):
        key = keys.generate_key()
        for index in range(len(keys.KEY_PREFIX), len(key)):
            assert not keys.is_well_formed(_replace_at(key, index)), index

    def test_a_fabricated_random_part_needs_the_right_checksum(self):
        random_part = "A" * keys.RANDOM_LENGTH
        assert keys.is_well_formed(keys.build_key(random_part))
        assert not keys.is_well_formed("hlts_" + random_part + "000000")

    @pytest.mark.parametrize(
        "candidate",
        [
            "",
            "hlts_",
            "hlts_short",
            "htls_" + "A" * 38,
            "HLTS_" + "A" * 38,
            "hlts_" + "A" * 39,
            "hlts_" + "A" * 31 + "-" + "000000",
            "hlts_" + "é" * 38,
        ],
    )
    def test_malformed_keys_are_refused(self, candidate):
        assert not keys.is_well_formed(candidate)

    def test_a_key_without_its_prefix_is_refused(self):
        key = keys.generate_key()
        assert not keys.is_well_formed(key[5:])
        assert not keys.is_well_formed("xxxx_" + key[5:])


class TestDigest:
    def test_digest_is_sha256_hex_and_deterministic(self):
        key = keys.generate_key()
        assert re.fullmatch(r"[0-9a-f]{64}", keys.digest(key))
        assert keys.digest(key) == keys.digest(key)
        assert key not in keys.digest(key)

    def test_matches_only_its_own_key(self):
        key, other = keys.generate_key(), keys.generate_key()
        assert keys.matches(key, keys.digest(key))
        assert not keys.matches(other, keys.digest(key))
