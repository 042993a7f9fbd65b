"""Settings shared by every environment.

This is the one place that reads the environment. The other settings modules
(local, test, production) only adjust what is read here.
"""

import ipaddress
from datetime import timedelta
from pathlib import Path

import environ
from celery.schedules import crontab

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()

# --- The environment, read once ---------------------------------------------
DATABASE_URL = env.str("DATABASE_URL", default="")
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="")
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
AI_PROBE_ALLOW_LOOPBACK = env.bool("AI_PROBE_ALLOW_LOOPBACK", default=False)
# Webhook URLs must resolve to public addresses unless these allow a private LAN or loopback.
WEBHOOK_ALLOW_PRIVATE = env.bool("WEBHOOK_ALLOW_PRIVATE", default=False)
WEBHOOK_ALLOW_LOOPBACK = env.bool("WEBHOOK_ALLOW_LOOPBACK", default=False)
API_KEY_NOTIFY_DAILY_HOUR = env.int("API_KEY_NOTIFY_DAILY_HOUR", default=6)
# Behind a TLS-terminating proxy: the header it sets, e.g. "HTTP_X_FORWARDED_PROTO".
_PROXY_SSL_HEADER = env.str("DJANGO_SECURE_PROXY_SSL_HEADER", default="")
RETENTION_DAILY_HOUR = env.int("RETENTION_DAILY_HOUR", default=3)
LOG_LEVEL = env.str("DJANGO_LOG_LEVEL", default="INFO")
# Reverse proxies whose X-Forwarded-For is believed (comma-separated networks); none by default.
_TRUSTED_PROXIES = env.list("TRUSTED_PROXIES", default=[])


def _networks(entries: list[str], variable: str) -> list[str]:
    try:
        return [str(ipaddress.ip_network(entry.strip())) for entry in entries if entry.strip()]
    except ValueError as exc:
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured(f"{variable}: {exc}") from None


TRUSTED_PROXIES = _networks(_TRUSTED_PROXIES, "TRUSTED_PROXIES")
# GitHub secret scanning: the public keys its alerts may be signed with, as a JSON object
# {"<key identifier>": "<PEM>"} (see docs/notes/leaks.md); none means every alert is refused.
GITHUB_SECRET_SCANNING_KEYS = env.json("GITHUB_SECRET_SCANNING_KEYS", default={})
if not isinstance(GITHUB_SECRET_SCANNING_KEYS, dict):
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("GITHUB_SECRET_SCANNING_KEYS: a JSON object of key identifier -> PEM.")
# "plain" (default) or "json": one JSON object per line, for a log shipper.
LOG_FORMAT = env.str("DJANGO_LOG_FORMAT", default="plain")
# The bearer token Prometheus scrapes /metrics with; unset, /metrics answers 404 to everyone.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
# A Celery worker serves its own /metrics (same token) on this port when set; 0 = off.
WORKER_METRICS_PORT = env.int("WORKER_METRICS_PORT", default=0)

# --- Applications -------------------------------------------------------------
INSTALLED_APPS = [
    "core.admin_config.HaltlessAdminConfig",  # django.contrib.admin with our site
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    # Ours, in the order their imports point (lower apps first).
    "core",
    "tenants",
    "audit",
    "users",
    "apikeys",
    "settings_app",
    "webhooks",
    "telemetry",
    "retention",
]

MIDDLEWARE = [
    # First, so it times (and gives a request id to) everything below it.
    "core.middleware.RequestObservabilityMiddleware",
    "core.middleware.ApiJsonErrorsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "core.middleware.ResponseHeadersMiddleware",
    "core.middleware.DatabaseUnavailableMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "core.middleware.OptionalTrailingSlashMiddleware",
    "core.middleware.RequestBodyLimitMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "haltless.urls"
WSGI_APPLICATION = "haltless.wsgi.application"
# Documented paths answer with and without a trailing slash, never with a redirect.
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------
# With no DATABASE_URL: an embedded SQLite file in the git-ignored var/ folder.
DATABASES = {
    "default": env.db_url_config(DATABASE_URL)
    if DATABASE_URL
    else {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "var" / "haltless.sqlite3"}
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # SQLite lets one writer in at a time. A deferred transaction that reads, then writes,
    # fails at once with "database is locked" when another writer got there first; begun
    # IMMEDIATE, it takes the write lock up front, and a second writer waits (up to
    # `timeout` seconds) instead of failing. WAL lets reads go on while one writes, and
    # synchronous=NORMAL is WAL's durable-across-app-crashes setting (a power cut may lose
    # the last commits, never corrupt the file).
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"]["CONN_MAX_AGE"] = 60
    # A connection that died (database restarted, backend terminated) is replaced at the
    # next request instead of failing it.
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    # An unreachable database answers 503 within seconds (core.middleware), well inside
    # gunicorn's timeout, instead of hanging the worker on connect.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("connect_timeout", 3)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache ------------------------------------------------------------------------
# Login throttling and "last used" bookkeeping must be shared by all workers, so a
# configured Redis is used as the cache; the embedded default keeps it in-process.
if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    CACHES = {
        "default": {
            # Redis down: a per-process cache stands in, never a 500 (core/cache.py).
            "BACKEND": "core.cache.FallbackRedisCache",
            "LOCATION": CELERY_BROKER_URL,
            "KEY_PREFIX": "haltless",
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Auth -------------------------------------------------------------------------
AUTH_USER_MODEL = "users.User"
AUTHENTICATION_BACKENDS = ["users.backends.EmailBackend"]
AUTH_PASSWORD_VALIDATORS = [
    {
        "NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator",
        "OPTIONS": {"user_attributes": ("email", "full_name")},
    },
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Internationalisation -------------------------------------------------------------
TIME_ZONE = "UTC"

# --- Static files ------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# --- REST framework ----------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apikeys.authentication.ApiKeyAuthentication",
        "users.authentication.JWTAuthentication",
    ],
    # The gate every endpoint inherits: API keys only where a scope is declared.
    "DEFAULT_PERMISSION_CLASSES": ["core.permissions.ApiAccess"],
    "DEFAULT_RENDERER_CLASSES": ["core.renderers.JSONRenderer"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "core.negotiation.ContentNegotiation",
    "DEFAULT_PARSER_CLASSES": ["core.parsers.JSONParser"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    # drf-spectacular's, plus the 400/401/403/404/413/415/429 answers every endpoint can give.
    "DEFAULT_SCHEMA_CLASS": "core.openapi.ApiAutoSchema",
    "EXCEPTION_HANDLER": "core.exceptions.api_exception_handler",
    "DEFAULT_METADATA_CLASS": "core.metadata.ApiMetadata",
    "DEFAULT_THROTTLE_RATES": {
        "login_ip": "30/min",
        "login_account": "10/min",
        # POST /public/credentials/revoke, per client address.
        "public_report_ip": "30/min",
    },
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=15),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=7),
    "UPDATE_LAST_LOGIN": True,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Haltless Settings API",
    "DESCRIPTION": (
        "Users and roles, API keys with scopes, per-role permissions and dashboard presets, "
        "AI provider settings, unit preferences, tiered data retention, and the scope-guarded "
        'telemetry endpoints. Errors use DRF\'s shapes: `{"detail": ...}` or '
        '`{"field": [messages]}`. Unknown fields in a write body are rejected with 400. '
        'While the database is unreachable every endpoint answers 503 `{"detail": ...}` with `Retry-After`.'
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "ENUM_NAME_OVERRIDES": {
        "ApiKeyStatusEnum": ["active", "disabled", "expired"],
        "RetentionRunStatusEnum": "retention.models.RetentionRun.Status",
    },
}

# --- Celery ------------------------------------------------------------------------
# No broker configured: tasks run in-process, eagerly, as the embedded default.
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_BROKER_URL = CELERY_BROKER_URL or "memory://"
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_TIME_LIMIT = 30 * 60
CELERY_TASK_SOFT_TIME_LIMIT = 25 * 60
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Broker down when a request wants work done: give up publishing within about two
# seconds, so the request can answer 503 and roll back (retention.tasks).
CELERY_BROKER_CONNECTION_TIMEOUT = 1
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}
# A worker killed mid-task: tasks are acknowledged when they finish (retention sets
# acks_late), so the message comes back after the visibility timeout, which must
# exceed the longest task (retention's hard limit is 55 minutes). Unacknowledged
# messages are swept back every 10 s.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": 3600,
    "unacked_restore_interval": 10,
    "unacked_restore_throttle": 1,
    "socket_connect_timeout": 1,
    "socket_timeout": 5,
}
# Daily retention for every tenant (one task per tenant), at RETENTION_DAILY_HOUR UTC.
CELERY_BEAT_SCHEDULE = {
    "retention-daily": {
        "task": "retention.schedule_all",
        "schedule": crontab(minute=0, hour=RETENTION_DAILY_HOUR),
    },
    # Rollups (1 h / 1 d) of newly ingested readings, late backfills included: at most a
    # couple of minutes behind ingest (a retention run also builds them before deleting).
    "telemetry-rollups": {"task": "telemetry.rollups_build", "schedule": 60.0},
    # Machines deleted over HTTP or in the admin whose background purge was lost.
    "telemetry-machines-purge": {"task": "telemetry.machines_purge_pending", "schedule": 600.0},
    # The webhook outbox's sweep: retries fall due, and a lost task is still sent.
    "webhooks-send-due": {"task": "webhooks.send_due", "schedule": 60.0},
    # Expiry and unused-key notices, each key and threshold once.
    "api-keys-notify-daily": {
        "task": "apikeys.notify",
        "schedule": crontab(minute=15, hour=API_KEY_NOTIFY_DAILY_HOUR),
    },
    # API keys' observed addresses: the Redis buffer into the database (also flushed whenever read).
    "apikeys-flush-observed-ips": {"task": "apikeys.flush_observed_ips", "schedule": 300.0},
    # PostgreSQL: readings partitions for the days ahead (a no-op on SQLite).
    "telemetry-partitions": {"task": "telemetry.partitions_ensure", "schedule": crontab(minute=17)},
}
# Without a broker, a daemon thread in each process sends webhooks (the embedded mode).
WEBHOOK_EMBEDDED_SENDER = True
# Readings partitions (PostgreSQL): width and how far ahead they are created (docs/notes/scale.md).
READINGS_PARTITION_DAYS = 28
READINGS_PARTITIONS_AHEAD_DAYS = 7

# --- Haltless ----------------------------------------------------------------------
# Tenant tiers and their retention windows, in days: raw readings and heartbeats, and
# the 1-hour/1-day rollups that outlive them (the caps of a tenant's retention policy).
HALTLESS_TIERS = {
    "free": {"readings": 7, "rollups": 90},
    "starter": {"readings": 30, "rollups": 365},
    "professional": {"readings": 90, "rollups": 730},
    "enterprise": {"readings": 365, "rollups": 1825},
}
HALTLESS_DEFAULT_TIER = "free"
# Per-tier caps of API-key rate limits, per minute, for each key and for all of a tenant's keys together.
HALTLESS_TIER_RATE_CAPS = {
    "free": {"requests_per_minute": 600, "readings_per_minute": 100_000},
    "starter": {"requests_per_minute": 3_000, "readings_per_minute": 500_000},
    "professional": {"requests_per_minute": 12_000, "readings_per_minute": 2_000_000},
    "enterprise": {"requests_per_minute": 60_000, "readings_per_minute": 10_000_000},
}
# The Redis that API-key rate limits and observed addresses share across processes (the broker's, when it
# is a Redis); empty: each process counts alone.
HALTLESS_REDIS_URL = CELERY_BROKER_URL if CELERY_BROKER_URL.startswith(("redis://", "rediss://")) else ""
# The models of the Haltless-hosted AI provider ("platform"), as GET /settings/ai/models lists them.
HALTLESS_PLATFORM_AI_MODELS = ["haltless-standard", "haltless-advanced"]

# --- Logging -----------------------------------------------------------------------
# Every line is redacted by its formatter and carries the request id (core.logging), whatever the format.
if LOG_FORMAT not in ("plain", "json"):
    raise ValueError(f"DJANGO_LOG_FORMAT must be 'plain' or 'json', not {LOG_FORMAT!r}.")
LOGGING_CONFIG = "core.logging.configure"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "core.logging.RequestIdFilter"},
    },
    "formatters": {
        "plain": {
            "()": "core.logging.RedactingFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s",
        },
        "json": {"()": "core.logging.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["request_id"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
}
