from datetime import UTC

import django_filters
from django import forms

from audit.models import AuditEvent


class UtcDateTimeField(django_filters.fields.IsoDateTimeField):
    """An ISO 8601 datetime, normalised to UTC before it reaches the database.

    Python accepts offsets up to ±23:59 but PostgreSQL only ±15:59, and an
    offset can push year 1 or 9999 out of range: refused here with a 400, not
    by the database with a 500.
    """

    def to_python(self, value):
        parsed = super().to_python(value)
        if parsed is None:
            return None
        try:
            return parsed.astimezone(UTC)
        except OverflowError:
            raise forms.ValidationError("Enter a date and time between years 1 and 9999 (UTC).") from None


class UtcDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UtcDateTimeField


class AuditEventFilter(django_filters.FilterSet):
    action = django_filters.CharFilter(field_name="action", help_text="Exact action, e.g. `api_key.create`.")
    actor = django_filters.UUIDFilter(field_name="actor_id", help_text="The id of the user or API key that acted.")
    actor_type = django_filters.ChoiceFilter(field_name="actor_type", choices=AuditEvent.ActorType.choices)
    target_type = django_filters.CharFilter(field_name="target_type", help_text="e.g. `apikey`, `user`.")
    target_id = django_filters.CharFilter(field_name="target_id")
    # `from` is a Python keyword, so these two are declared by name.
    locals()["from"] = UtcDateTimeFilter(
        field_name="occurred_at", lookup_expr="gte", help_text="Events at or after this time (ISO 8601)."
    )
    locals()["to"] = UtcDateTimeFilter(
        field_name="occurred_at", lookup_expr="lt", help_text="Events before this time (ISO 8601)."
    )

    class Meta:
        model = AuditEvent
        fields: list[str] = []
