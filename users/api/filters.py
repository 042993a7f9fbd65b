from django_filters import rest_framework as filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field

from users.models import User


@extend_schema_field(OpenApiTypes.BOOL)  # a boolean, as a query string writes it: `true` or `false`
class StrictBooleanFilter(filters.TypedChoiceFilter):
    """`true` or `false`, anything else a 400: django-filter's BooleanFilter ignores a value it cannot read,
    so `?is_active=2` would silently list everyone."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("choices", [("true", "true"), ("false", "false")])
        kwargs.setdefault("coerce", lambda value: value == "true")
        super().__init__(*args, **kwargs)


class UserFilter(filters.FilterSet):
    is_active = StrictBooleanFilter(help_text="`true` or `false`.")

    class Meta:
        model = User
        fields = ["role", "is_active"]
