"""The newcomer's settings: `make run` with nothing configured."""

from .base import *  # noqa: F403
from .base import SECRET_KEY, env

DEBUG = env.bool("DJANGO_DEBUG", default=True)
# Only for a developer's machine; production refuses to start without a real key.
SECRET_KEY = SECRET_KEY or "dev-only-insecure-secret-key-do-not-use-in-production"
