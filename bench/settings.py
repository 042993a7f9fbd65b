"""Settings for `python -m bench` and the servers it starts.

The test settings (PostgreSQL through DATABASE_URL), except where that would
distort a measurement: the test suite's MD5 hasher is replaced by Django's
real default (PBKDF2), and logging is kept to warnings so that writing log
lines is not what gets measured.
"""

from haltless.settings.test import *  # noqa: F403
from haltless.settings.test import ALLOWED_HOSTS, LOGGING

PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.BCryptSHA256PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]

# Benchmarks drive the app in-process with django.test.Client, whose host is "testserver".
ALLOWED_HOSTS = [*ALLOWED_HOSTS, "testserver"]

LOGGING = {**LOGGING, "root": {**LOGGING["root"], "level": "WARNING"}}
