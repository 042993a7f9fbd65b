"""Key format details that mutation sampling found untested (docs/notes/mutation.md)."""

from apikeys import keys


def test_a_short_checksum_is_padded_on_the_left():
    # CRC32 of this random part is 477,466,496 < 62**5: five base62 digits, padded to six.
    random_part = "Y" * 32
    assert keys.build_key(random_part) == "hlts_" + random_part + "0wjoQw"
    assert keys._base62(61, 6) == "00000Z"
    assert keys.is_well_formed("hlts_" + random_part + "0wjoQw")
    assert not keys.is_well_formed("hlts_" + random_part + "wjoQw0")


def test_a_generated_enrollment_token_carries_its_own_prefix():
    token = keys.generate_key(keys.ENROLLMENT_TOKEN_PREFIX)
    assert token.startswith("hlte_")
    assert keys.is_well_formed(token, prefix=keys.ENROLLMENT_TOKEN_PREFIX)
    assert not keys.is_well_formed(token)
