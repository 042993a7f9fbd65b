# syntax=docker/dockerfile:1
# Multi-stage: dependencies are built in one stage and copied as a virtualenv into
# a slim runtime that runs as a non-root user under gunicorn.

FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
COPY requirements.txt /tmp/requirements.txt
RUN /opt/venv/bin/pip install -r /tmp/requirements.txt


FROM python:3.11-slim-bookworm AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DJANGO_SETTINGS_MODULE=haltless.settings.production \
    WEB_CONCURRENCY=3

RUN useradd --system --uid 10001 --user-group --home-dir /app --shell /usr/sbin/nologin haltless
WORKDIR /app
COPY --from=build /opt/venv /opt/venv
COPY --chown=haltless:haltless . /app

# collectstatic imports the production settings, which refuse to start without a
# secret; this throwaway value exists only for this build step and is not kept.
RUN DJANGO_SECRET_KEY="build-only-collectstatic-$(python -c 'import secrets; print(secrets.token_urlsafe(48))')" \
    python manage.py collectstatic --noinput \
 && chown -R haltless:haltless /app/var

USER haltless
EXPOSE 8000

# Liveness (/healthz answers whenever the process can; it touches nothing): a container
# whose database is down is not restarted for it. Readiness (/readyz) is for the load
# balancer and for compose's depends_on (see docker-compose.yml).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status == 200 else 1)"]

# WEB_CONCURRENCY sets gunicorn's worker count; migrations run as their own step
# (see docker-compose.yml), never inside every web container's start.
# gthread workers keep edge agents' connections open between heartbeats and batches
# (sync workers close every connection after one response): measured in
# bench/bench_hotpaths.py, see README "Serving". Keep-alive outlasts the 10 s heartbeat.
CMD ["gunicorn", "haltless.wsgi:application", "--bind", "0.0.0.0:8000", "--worker-class", "gthread", "--threads", "4", "--keep-alive", "75", "--access-logfile", "-", "--timeout", "30", "--graceful-timeout", "30"]
