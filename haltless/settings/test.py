"""Settings for the test suite (SQLite by default, PostgreSQL with DATABASE_URL)."""

from .base import *  # noqa: F403
from .base import SECRET_KEY

DEBUG = False
SECRET_KEY = SECRET_KEY or "test-only-secret-key-not-for-production-0123456789"
# Fast hashing keeps the suite quick; password rules are still the real validators.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Tests send webhooks by calling the outbox's services, at the times they choose.
WEBHOOK_EMBEDDED_SENDER = False
