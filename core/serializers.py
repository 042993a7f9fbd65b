from collections.abc import Mapping

from rest_framework import serializers
from rest_framework.utils import html

UNKNOWN_FIELD = "Unknown field."
READ_ONLY_FIELD = "This field is read-only."


class EmptyQueryValueMixin:
    """`?tier=` is an empty value, not an absent parameter: refused unless the field allows blank.

    DRF reads a query string (or form) as HTML input, where an optional field
    sent empty is skipped, so `?tier=` silently meant "no tier" although the
    schema says the parameter is at least one character. Each such value now
    gets the field's own error for `""` ("This field may not be blank.", "Must
    be a valid boolean.", ...), as it would in a JSON body.
    """

    def to_internal_value(self, data):
        if html.is_html_input(data):
            errors = {}
            for name, field in self.fields.items():
                if field.read_only or name not in data or data.get(name) != "" or getattr(field, "allow_blank", False):
                    continue
                try:
                    field.run_validation("")
                except serializers.ValidationError as exc:
                    errors[name] = exc.detail
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)


class StrictSerializerMixin(EmptyQueryValueMixin):
    """Reject fields the serializer does not accept, instead of ignoring them.

    A typo such as `"scope"` for `"scopes"` must not silently fall back to a
    default; the client gets a 400 naming the field.
    """

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            errors = {}
            for name in data:
                field = self.fields.get(name)
                if field is None:
                    errors[name] = [UNKNOWN_FIELD]
                elif field.read_only:
                    errors[name] = [READ_ONLY_FIELD]
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)


class StrictSerializer(StrictSerializerMixin, serializers.Serializer):
    pass


def validated_data(serializer_class: type[serializers.Serializer], data) -> dict:
    """What a view's serializer makes of a body or a query, or its 400 (DRF's ValidationError)."""
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data
