"""Query filters of the telemetry API."""

from django.db.models import Q
from django_filters import rest_framework as filters

from telemetry.models import Machine


class MachineFilter(filters.FilterSet):
    # Bounded: an unbounded LIKE pattern is a 500 on SQLite ("pattern too complex").
    external_id = filters.CharFilter(field_name="external_id", max_length=100, help_text="Exact external_id.")
    search = filters.CharFilter(
        method="filter_search", max_length=200, help_text="Part of the name, external_id or location."
    )

    class Meta:
        model = Machine
        fields = ["external_id", "search"]

    def filter_search(self, queryset, name, value):
        term = value.strip()
        if not term:
            return queryset
        return queryset.filter(Q(name__icontains=term) | Q(external_id__icontains=term) | Q(location__icontains=term))
