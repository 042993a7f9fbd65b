from collections.abc import Mapping

from rest_framework import serializers

UNKNOWN_FIELD = "Unknown field."
READ_ONLY_FIELD = "This field is read-only."


class StrictSerializerMixin:
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


class StrictModelSerializer(StrictSerializerMixin, serializers.ModelSerializer):
    pass
