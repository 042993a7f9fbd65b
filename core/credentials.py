"""The shapes of Haltless's own credentials: the one place that knows them.

An API key is `hlts_` + 32 random base62 characters + a 6-character base62
checksum of those 32; an enrollment token has the same layout under `hlte_`
(see apikeys.keys, which makes and checks them). Everything else that must
recognise one without checking it (the JWT authentication stepping aside for
a key, the audit log and the log formatter redacting a secret) imports the
prefixes and patterns from here, so a change of format is made once.

Django-free, and `core` knows no app: apikeys builds on this module, not the reverse.
"""

import re
import string

API_KEY_PREFIX = "hlts_"
# Enrollment tokens share the layout under their own prefix, so secret scanners tell them
# apart and neither can be used as the other.
ENROLLMENT_TOKEN_PREFIX = "hlte_"
PREFIXES = (API_KEY_PREFIX, ENROLLMENT_TOKEN_PREFIX)

BASE62 = string.digits + string.ascii_letters
RANDOM_LENGTH = 32
CHECKSUM_LENGTH = 6
LENGTH = len(API_KEY_PREFIX) + RANDOM_LENGTH + CHECKSUM_LENGTH  # both prefixes are 5 characters

# A cheap substring test before any pattern: every prefix starts with it.
MARKER = "hlt"
# A key or token (or a long enough piece of one) in free text, for redaction. Group 1 is the
# prefix, which a redactor may keep; 8 characters after it are already too much to show.
SECRET = re.compile("(" + "|".join(map(re.escape, PREFIXES)) + ")[0-9A-Za-z]{8,}")
# A JSON Web Token (a user's access or refresh token) in free text.
JWT = re.compile(r"eyJ[\w-]+\.eyJ[\w-]+\.[\w-]*")


def is_api_key_shaped(value: str | bytes) -> bool:
    """Whether `value` starts like an API key (not whether it is one: see apikeys.keys)."""
    if isinstance(value, bytes):
        return value.startswith(API_KEY_PREFIX.encode())
    return value.startswith(API_KEY_PREFIX)
