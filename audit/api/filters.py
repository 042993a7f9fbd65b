import django_filters

from audit.models import AuditEvent


class AuditEventFilter(django_filters.FilterSet):
    action = django_filters.CharFilter(field_name="action", help_text="Exact action, e.g. `api_key.create`.")
    actor = django_filters.UUIDFilter(field_name="actor_id", help_text="The id of the user or API key that acted.")
    actor_type = django_filters.ChoiceFilter(field_name="actor_type", choices=AuditEvent.ActorType.choices)
    target_type = django_filters.CharFilter(field_name="target_type", help_text="e.g. `apikey`, `user`.")
    target_id = django_filters.CharFilter(field_name="target_id")
    # `from` is a Python keyword, so these two are declared by name.
    locals()["from"] = django_filters.IsoDateTimeFilter(
        field_name="occurred_at", lookup_expr="gte", help_text="Events at or after this time (ISO 8601)."
    )
    locals()["to"] = django_filters.IsoDateTimeFilter(
        field_name="occurred_at", lookup_expr="lt", help_text="Events before this time (ISO 8601)."
    )

    class Meta:
        model = AuditEvent
        fields: list[str] = []
