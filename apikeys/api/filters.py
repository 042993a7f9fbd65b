from datetime import timedelta

import django_filters
from django.utils import timezone

from apikeys.models import ApiKey


class ApiKeyFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(
        choices=[("active", "active"), ("disabled", "disabled"), ("expired", "expired")],
        method="filter_status",
        help_text="`expired` wins over `disabled`.",
    )
    exposed = django_filters.ChoiceFilter(
        choices=[("true", "true"), ("false", "false")], method="filter_exposed", help_text="Named by a leak report."
    )
    expiring_within_days = django_filters.NumberFilter(
        method="filter_expiring", min_value=0, max_value=3650, help_text="Not yet expired, expiring within N days."
    )
    unused_for_days = django_filters.NumberFilter(
        method="filter_unused",
        min_value=0,
        max_value=36500,
        help_text="`last_used_at` (or `created_at` when never used) older than N days.",
    )

    class Meta:
        model = ApiKey
        fields: list[str] = []

    def filter_status(self, queryset, name, value):
        return queryset.with_status(value, timezone.now()) if value else queryset

    def filter_exposed(self, queryset, name, value):
        if not value:
            return queryset
        return queryset.filter(exposed_at__isnull=value != "true")

    def filter_expiring(self, queryset, name, value):
        if value is None:
            return queryset
        now = timezone.now()
        return queryset.filter(expires_at__gt=now, expires_at__lte=now + timedelta(days=float(value)))

    def filter_unused(self, queryset, name, value):
        if value is None:
            return queryset
        return queryset.unused_since(timezone.now() - timedelta(days=float(value)))
