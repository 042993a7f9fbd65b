"""Logging: the request id of the current request or task, redaction, and the JSON format.

Why the standard library's logging with a JSON formatter, not structlog: every
module here (and Django, DRF, Celery, gunicorn) already logs through
`logging.getLogger(__name__)`; a formatter and a filter on the one console
handler turn all of them into JSON lines without touching a call site. structlog
would need its own processor chain bridged to the same stdlib records to catch
the third-party loggers, for no gain here.

Why the formatter is ours, on msgspec's encoder, and not python-json-logger's:
the request line is on the heartbeat's hot path, and measured in a request
(`python -m bench ops`) python-json-logger's generic field machinery cost about
50 µs a line, most of the 1.1x budget the whole of observability has; the
formatter below writes the same object in about a fifth of that.

Redaction runs on every line whatever the format (in the formatters), and in gunicorn's access
log (haltless.gunicorn_logging): an `hlts_`/`hlte_` secret, a JWT, a bearer
credential or a `password=`-like parameter never reaches a log line.
"""

import logging
import logging.config
import re
import time
from contextvars import ContextVar

import msgspec

from core import credentials

# The current request's (or task's) id; "-" outside one.
request_id_var: ContextVar[str] = ContextVar("request_id", default="-")

REQUEST_ID_MAX_LENGTH = 128
_VISIBLE_ASCII = re.compile(r"[\x21-\x7e]{1,128}")

REDACTED = "[REDACTED]"
# One pattern per kind of credential, each tried only when a cheap substring test says it may
# match: a single alternation with IGNORECASE costs ~100 µs per log line, these ~2 µs.
_KEY = credentials.SECRET  # API keys, enrollment tokens; the prefix stays
_JWT = re.compile(r"eyJ[0-9A-Za-z_-]+\.[0-9A-Za-z_-]+\.[0-9A-Za-z_-]*")
_SCHEME = re.compile(r"\b((?:bearer|basic|token)\s+)[^\s\"',;]+", re.IGNORECASE)  # an Authorization value
_PARAM_NAMES = (
    "password|new_password|current_password|old_password|passwd|secret|token|access|refresh"
    "|api_key|apikey|key|webhook_secret|credentials"
)
_PARAM = re.compile(rf"\b((?:{_PARAM_NAMES})=)[^&\s\"']+", re.IGNORECASE)  # in a query string or a form


def redact(text: str) -> str:
    """`text` with every credential replaced by [REDACTED] (cheap when there is none)."""
    if credentials.MARKER in text:
        text = _KEY.sub(rf"\1{REDACTED}", text)
    if "eyJ" in text:
        text = _JWT.sub(REDACTED, text)
    lowered = text.lower()
    if "bearer" in lowered or "basic" in lowered or "token" in lowered:
        text = _SCHEME.sub(rf"\1{REDACTED}", text)
    if "=" in text:
        text = _PARAM.sub(rf"\1{REDACTED}", text)
    return text


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


# The attributes every LogRecord has; anything else on a record is an `extra` and becomes a field.
_RECORD_ATTRIBUTES = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "request_id", "taskName"}
_encoder = msgspec.json.Encoder(enc_hook=str)  # a value JSON has no type for is written as its str()


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, the record's extras, any traceback."""

    # (a whole second, its text): one strftime a second. One tuple, swapped whole, so that
    # threads formatting at once (gunicorn's gthread workers) never pair a second with another's text.
    _second: tuple[int, str] = (-1, "")

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
        }
        for name, value in record.__dict__.items():
            if name not in _RECORD_ATTRIBUTES:
                line[name] = value
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exc_info"] = record.exc_text
        if record.stack_info:
            line["stack_info"] = self.formatStack(record.stack_info)
        return redact(_encoder.encode(line).decode())

    def formatTime(self, record, datefmt=None):
        # RFC 3339 in UTC with milliseconds, the form log shippers parse without configuration.
        second, text = self._second
        if second != int(record.created):
            second = int(record.created)
            text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = (second, text)
        return f"{text}.{int(record.msecs):03d}Z"


def configure(config: dict) -> None:
    """Django's LOGGING_CONFIG: the records skip what no format here prints, then `dictConfig`.

    Neither format shows a record's source line, thread or process, and looking
    them up is most of what creating a record costs (the logging HOWTO's
    "Optimization" section names these switches): one less stack walk and two
    less lookups on every line, the request line included.
    """
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging.config.dictConfig(config)
