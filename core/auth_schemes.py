"""Security schemes of the authentication classes, declared as data (see core.openapi for the rest of the schema).

Kept apart from core.openapi: the authentication modules import this while DRF's settings load, before
drf-spectacular's AutoSchema (and the views it pulls in) can be imported.
"""

import copy

from drf_spectacular.extensions import OpenApiAuthenticationExtension


def bearer_scheme(*, bearer_format: str, description: str) -> dict:
    """An `Authorization: Bearer …` security scheme."""
    return {"type": "http", "scheme": "bearer", "bearerFormat": bearer_format, "description": description}


class DeclaredAuthScheme(OpenApiAuthenticationExtension):
    """An authentication class's security scheme, declared as data: subclasses set `target_class`,
    `name` and `definition` (one scheme, or a list of them when `name` is a list)."""

    definition: dict | list[dict] = {}

    def get_security_definition(self, auto_schema):
        return copy.deepcopy(self.definition)
