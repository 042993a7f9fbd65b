"""The OpenAPI schema class every endpoint shares: the error answers, documented once.

drf-spectacular documents only the success answer unless a view says more, so
a client (or schemathesis) reading the schema would not know that any
endpoint can answer 401, or that a body can be refused with 400. This adds,
to every operation that does not document them itself, the errors the shared
conventions (core.permissions, core.exceptions, DRF's parsers and paginators)
can produce, with DRF's error shapes.
"""

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import get_override
from rest_framework.pagination import PageNumberPagination
from rest_framework.permissions import AllowAny

from core.serializers import StrictSerializerMixin

DETAIL_SCHEMA = {"type": "object", "properties": {"detail": {"type": "string"}}, "required": ["detail"]}
# Field errors nest as the body does (a list item's errors under its index), so any object.
VALIDATION_SCHEMA = {"type": "object", "additionalProperties": {}}

ERRORS = {
    "400": (VALIDATION_SCHEMA, 'Invalid input: `{"field": ["message", ...]}`, or `{"detail": "..."}`.'),
    "401": (DETAIL_SCHEMA, "No credentials, or invalid, expired or revoked ones."),
    "403": (DETAIL_SCHEMA, "Authenticated, but the role or the API key's scopes do not allow this."),
    "404": (DETAIL_SCHEMA, "Not found, or it belongs to another tenant (or the page does not exist)."),
    "409": (DETAIL_SCHEMA, "The current state does not allow this (already done, busy, a duplicate)."),
    "413": (DETAIL_SCHEMA, "The body is larger than the server accepts."),
    "415": (DETAIL_SCHEMA, "The body is not `application/json`."),
    "429": (DETAIL_SCHEMA, "Too many requests; `Retry-After` says when to try again."),
    "502": (DETAIL_SCHEMA, "A server this depends on gave no usable answer."),
    "503": (DETAIL_SCHEMA, "A service this needs is down; nothing was changed. `Retry-After` says when to try again."),
}


# What every answer to an API key with a rate limit set carries (apikeys.ratelimit).
RATE_LIMIT_HEADERS = {
    "RateLimit-Limit": "The key's effective requests per minute (sent when the key has a rate limit set).",
    "RateLimit-Remaining": "Requests left in the sliding 60-second window.",
    "RateLimit-Reset": "Seconds until the window has room again.",
}


class ApiAutoSchema(AutoSchema):
    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        responses = operation.setdefault("responses", {})
        for code in self._error_codes(operation):
            if code not in responses:
                schema, description = ERRORS[code]
                responses[code] = {"content": {"application/json": {"schema": schema}}, "description": description}
        # An error a view documents by its description alone still has DRF's body: say which, so
        # that a generated client parses it and hands the message to its caller.
        for code, response in responses.items():
            if code[0] in "45" and "content" not in response:
                schema = VALIDATION_SCHEMA if code == "400" else DETAIL_SCHEMA
                response["content"] = {"application/json": {"schema": schema}}
        # django-filter ignores an empty filter (`?actor=`): the schema says an empty value is allowed.
        filterset_class = getattr(self.view, "filterset_class", None)
        filter_names = (
            set(filterset_class.base_filters)
            if filterset_class
            else set(getattr(self.view, "filterset_fields", None) or ())
        )
        filters = filterset_class.base_filters if filterset_class else {}
        for parameter in operation.get("parameters", []):
            if parameter.get("in") == "query" and parameter.get("name") in filter_names:
                parameter["allowEmptyValue"] = True
                # A filter's bounds (`NumberFilter(min_value=0)`) are its parameter's bounds too.
                extra = getattr(filters.get(parameter["name"]), "extra", {})
                schema = parameter.setdefault("schema", {})
                for option, keyword in (
                    ("min_value", "minimum"),
                    ("max_value", "maximum"),
                    ("max_length", "maxLength"),
                ):
                    if extra.get(option) is not None:
                        schema.setdefault(keyword, extra[option])
        if getattr(self.view, "required_scope", None) is not None:
            # API keys come in here: each answer may carry the key's rate-limit headers.
            for response in responses.values():
                headers = response.setdefault("headers", {})
                for name, description in RATE_LIMIT_HEADERS.items():
                    headers.setdefault(name, {"schema": {"type": "integer"}, "description": description})
            retry_after = {"schema": {"type": "integer"}, "description": "Seconds to wait before retrying."}
            responses["429"].setdefault("headers", {}).setdefault("Retry-After", retry_after)
        return operation

    def _map_basic_serializer(self, serializer, direction):
        # A serializer's docstring is written for the next developer ("Reject fields the serializer
        # does not accept..."), not for API clients: components are described by their fields' help texts.
        component = super()._map_basic_serializer(serializer, direction)
        if not get_override(serializer, "description"):
            component.pop("description", None)
        if direction == "request" and isinstance(serializer, StrictSerializerMixin):
            # Unknown fields are a 400 (core.serializers): say so, so that clients and fuzzers know.
            component["additionalProperties"] = False
        return component

    def _error_codes(self, operation: dict) -> list[str]:
        locations = {parameter.get("in") for parameter in operation.get("parameters", [])}
        codes = ["401"]  # no credentials, or (at login) wrong ones
        if not all(isinstance(permission, AllowAny) for permission in self.view.get_permissions()):
            codes.append("403")
        if "requestBody" in operation:
            codes += ["400", "413", "415"]
        elif "query" in locations:
            codes.append("400")
        paginator = getattr(self.view, "pagination_class", None)
        if "path" in locations or (paginator and issubclass(paginator, PageNumberPagination)):
            codes.append("404")
        if self.view.get_throttles() or getattr(self.view, "required_scope", None) is not None:
            codes.append("429")  # a throttle, or an API key's rate limit
        # A view whose throttle or rule is applied by hand names its extra answers.
        codes += [code for code in getattr(self.view, "extra_error_codes", ()) if code not in codes]
        return codes
