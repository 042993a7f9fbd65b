"""gunicorn's logger, through the same redaction as the app's logs (core.logging).

The access log writes the request line, query string, referer and any header a
format asks for; each of those goes through `redact()` when it is formatted, so
an API key in a query string or an Authorization header never reaches it. With
DJANGO_LOG_FORMAT=json the access line is a JSON object (with the response's
X-Request-ID) and gunicorn's own messages use the app's JSON formatter.
"""

import json
import os
import time

from gunicorn.glogging import Logger, SafeAtoms

from core.logging import JsonFormatter, RedactingFormatter, redact


class RedactedAtoms(SafeAtoms):
    def __getitem__(self, key):
        value = super().__getitem__(key)
        return redact(value) if isinstance(value, str) else value


class RedactingLogger(Logger):
    atoms_wrapper_class = RedactedAtoms

    def setup(self, cfg):
        super().setup(cfg)
        self.json_format = os.environ.get("DJANGO_LOG_FORMAT", "plain") == "json"
        for handler in self.error_log.handlers:
            if self.json_format:
                handler.setFormatter(JsonFormatter())
            else:
                handler.setFormatter(RedactingFormatter(self.error_fmt, self.datefmt))

    def access(self, resp, req, environ, request_time):
        if not self.json_format:
            return super().access(resp, req, environ, request_time)
        if not self.access_log_enabled:
            return None
        atoms = RedactedAtoms(self.atoms(resp, req, environ, request_time))
        line = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "level": "INFO",
            "logger": "gunicorn.access",
            "request_id": atoms["{x-request-id}o"],
            "remote": atoms["h"],
            "method": atoms["m"],
            "path": atoms["U"],
            "query": atoms["q"],
            "status": int(atoms["s"]) if str(atoms["s"]).isdigit() else atoms["s"],
            "bytes": atoms["B"],
            "duration_ms": round(atoms["D"] / 1000, 3),
            "user_agent": atoms["a"],
        }
        try:
            self.access_log.info(json.dumps(line))
        except Exception:
            self.exception("access log")
        return None
