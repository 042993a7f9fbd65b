"""Configuration comes from the environment, read in one place (haltless/settings/base.py)."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_django(code: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL", "CELERY_"))}
    return subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


class TestProductionSettings:
    def test_refuse_to_start_without_a_secret_key(self):
        result = run_django("", DJANGO_SETTINGS_MODULE="haltless.settings.production")
        assert result.returncode != 0
        assert "DJANGO_SECRET_KEY must be set" in result.stderr

    def test_refuse_a_short_secret_key(self):
        result = run_django("", DJANGO_SETTINGS_MODULE="haltless.settings.production", DJANGO_SECRET_KEY="short")
        assert result.returncode != 0

    def test_check_deploy_is_clean(self):
        result = subprocess.run(
            [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
            cwd=ROOT,
            env={
                **os.environ,
                "DJANGO_SETTINGS_MODULE": "haltless.settings.production",
                "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
            },
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        assert "no issues" in result.stdout

    def test_proxy_ssl_header_is_configurable(self):
        code = "from django.conf import settings; print(settings.SECURE_PROXY_SSL_HEADER)"
        result = run_django(
            code,
            DJANGO_SETTINGS_MODULE="haltless.settings.production",
            DJANGO_SECRET_KEY=secrets.token_urlsafe(64),
            DJANGO_SECURE_PROXY_SSL_HEADER="HTTP_X_FORWARDED_PROTO",
        )
        assert result.stdout.strip() == "('HTTP_X_FORWARDED_PROTO', 'https')"


class TestEmbeddedDefaults:
    def test_nothing_configured_means_sqlite_in_var_and_eager_tasks(self):
        code = (
            "from django.conf import settings; d = settings.DATABASES['default']; "
            "print(d['ENGINE'], d['NAME'], settings.CELERY_TASK_ALWAYS_EAGER, settings.DEBUG)"
        )
        result = run_django(code, DJANGO_SETTINGS_MODULE="haltless.settings.local")
        engine, name, eager, debug = result.stdout.split()
        assert engine == "django.db.backends.sqlite3"
        assert name == str(ROOT / "var" / "haltless.sqlite3")
        assert (eager, debug) == ("True", "True")

    @pytest.mark.parametrize("module", ["haltless.settings.local", "haltless.settings.production"])
    def test_database_and_broker_urls_switch_to_postgres_and_redis(self, module):
        code = (
            "from django.conf import settings; d = settings.DATABASES['default']; "
            "print(d['ENGINE'], d['NAME'], d['HOST'], settings.CELERY_TASK_ALWAYS_EAGER, "
            "settings.CACHES['default']['BACKEND'])"
        )
        result = run_django(
            code,
            DJANGO_SETTINGS_MODULE=module,
            DJANGO_SECRET_KEY=secrets.token_urlsafe(64),
            DATABASE_URL="postgres://someone@127.0.0.1:5432/haltless",
            CELERY_BROKER_URL="redis://127.0.0.1:6379/0",
        )
        assert result.stdout.split() == [
            "django.db.backends.postgresql",
            "haltless",
            "127.0.0.1",
            "False",
            "core.cache.FallbackRedisCache",  # Django's RedisCache, with a per-process stand-in
        ]
