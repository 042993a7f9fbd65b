"""The ingest endpoint's JSON parser: a body limit sized to one batch, and NaN passed on.

DRF's JSONParser reads the whole stream, whatever its size (Django's
DATA_UPLOAD_MAX_MEMORY_SIZE only guards `request.body`), and refuses `NaN` and
`Infinity` as a parse error that cannot say which reading carried them. This
parser refuses an oversized body before reading it (413), and lets non-finite
numbers through to the ingest service, which names the reading. A well-typed
batch is decoded by msgspec (telemetry.services.ingest_body_decode), several
times faster than `json.loads`; any other body takes `json.loads`, so that
the service can say what is wrong with it.
"""

import json

from rest_framework import status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import BaseParser

from core.parsers import JSON_TOO_DEEP
from telemetry.services import MAX_BATCH_SIZE, ingest_body_decode

# A reading with 100-character ids, a full ISO timestamp and a 17-digit value
# takes about 360 bytes even pretty-printed; 512 leaves room and still refuses
# a body that could not be a valid batch.
MAX_READING_BYTES = 512
MAX_INGEST_BODY_BYTES = MAX_BATCH_SIZE * MAX_READING_BYTES


class PayloadTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = (
        f"The request body is larger than {MAX_INGEST_BODY_BYTES} bytes; "
        f"send at most {MAX_BATCH_SIZE} readings per batch."
    )
    default_code = "payload_too_large"


class IngestJSONParser(BaseParser):
    media_type = "application/json"
    max_body_bytes = MAX_INGEST_BODY_BYTES

    def parse(self, stream, media_type=None, parser_context=None):
        request = (parser_context or {}).get("request")
        meta = request.META if request is not None else {}
        try:
            declared = int(meta.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0
        if declared > self.max_body_bytes:
            raise PayloadTooLarge()
        body = stream.read(self.max_body_bytes + 1)
        if len(body) > self.max_body_bytes:
            raise PayloadTooLarge()
        typed = ingest_body_decode(body)
        if typed is not None:
            return typed
        try:
            return json.loads(body)
        except RecursionError:
            raise ParseError(JSON_TOO_DEEP) from None
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
