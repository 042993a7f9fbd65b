"""Logging: the request id of the current request or task, redaction, and the JSON format.

Why the standard library's logging with python-json-logger's formatter, not
structlog: every module here (and Django, DRF, Celery, gunicorn) already logs
through `logging.getLogger(__name__)`; a formatter and two filters on the one
console handler turn all of them into JSON lines without touching a call site,
and cost one `json.dumps` per line on the heartbeat's hot path. structlog would
need its own processor chain bridged to the same stdlib records to catch the
third-party loggers, for no gain here.

Redaction runs on every line whatever the format (in the formatters), and in gunicorn's access
log (haltless.gunicorn_logging): an `hlts_`/`hlte_` secret, a JWT, a bearer
credential or a `password=`-like parameter never reaches a log line.
"""

import logging
import re
import time
from contextvars import ContextVar

from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

# The current request's (or task's) id; "-" outside one.
request_id_var: ContextVar[str] = ContextVar("request_id", default="-")

REQUEST_ID_MAX_LENGTH = 128
_VISIBLE_ASCII = re.compile(r"[\x21-\x7e]{1,128}")

REDACTED = "[REDACTED]"
_SECRETS = re.compile(
    # API keys and enrollment tokens; a 12-character display prefix (hlts_ + 7) is not a secret.
    r"(?P<key>hlt[se]_)[0-9A-Za-z]{8,}"
    r"|eyJ[0-9A-Za-z_-]+\.[0-9A-Za-z_-]+\.[0-9A-Za-z_-]*"  # JWTs (header.payload.signature)
    r"|(?P<scheme>\b(?:Bearer|Basic|Token)\s+)[^\s\"',;]+"  # any credential in an Authorization value
    r"|(?P<param>\b(?:password|new_password|current_password|old_password|passwd|secret|token|access|refresh"
    r"|api_key|apikey|key|webhook_secret|credentials)=)[^&\s\"']+",  # in a query string or form
    re.IGNORECASE,
)


def _replace(match: re.Match) -> str:
    prefix = match.group("key") or match.group("scheme") or match.group("param") or ""
    return prefix + REDACTED


def redact(text: str) -> str:
    """`text` with every credential replaced by [REDACTED] (cheap when there is none)."""
    return _SECRETS.sub(_replace, text)


def valid_request_id(value: str | None) -> bool:
    """At most 128 visible ASCII characters (no spaces, no control characters)."""
    return bool(value) and _VISIBLE_ASCII.fullmatch(value) is not None


class RequestIdFilter(logging.Filter):
    """Adds `request_id` (the current request's or task's) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        return True


class RedactingFormatter(logging.Formatter):
    """The plain format, with every credential in the finished line (message, extras, traceback) redacted.

    Redaction happens when a handler formats, never by changing the record, so
    other handlers (and the no-secrets-in-logs test) see what the code logged.
    """

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JsonFormatter(_JsonFormatter):
    """One JSON object per line: time, level, logger, message, request id and the record's extras."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("rename_fields", {"levelname": "level", "name": "logger", "asctime": "time"})
        kwargs.setdefault("timestamp", False)
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s", *args, **kwargs)

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))

    def formatTime(self, record, datefmt=None):
        # RFC 3339 in UTC with milliseconds, the form log shippers parse without configuration.
        return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(record.created))}.{int(record.msecs):03d}Z"
