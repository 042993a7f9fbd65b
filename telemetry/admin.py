from django.contrib import admin
from django.core.paginator import Paginator
from django.db.models import F, OuterRef, Subquery
from django.utils.functional import cached_property

from telemetry import selectors
from telemetry.models import AgentHeartbeat, Machine, Sensor, SensorReading


class BoundedCountPaginator(Paginator):
    """Counts at most LIMIT rows: readings and heartbeats are far too many for COUNT(*).

    Past the limit the list still pages up to it; a filter narrows it further.
    """

    LIMIT = 10_000

    @cached_property
    def count(self) -> int:
        return self.object_list[: self.LIMIT].count()


class _ReadOnlyAdmin(admin.ModelAdmin):
    """Rows written only by edge agents: viewable, never added, changed or deleted here."""

    paginator = BoundedCountPaginator
    show_full_result_count = False
    list_per_page = 100

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class SensorInline(admin.TabularInline):
    model = Sensor
    extra = 0
    fields = ["key", "kind", "canonical_unit"]
    readonly_fields = ["canonical_unit"]

    @admin.display(description="canonical unit")
    def canonical_unit(self, sensor: Sensor) -> str:
        return sensor.canonical_unit if sensor.kind else "-"


@admin.register(Machine)
class MachineAdmin(admin.ModelAdmin):
    list_display = ["name", "external_id", "tenant", "location", "last_reading_at", "created_at"]
    list_filter = ["tenant"]
    list_select_related = ["tenant"]
    search_fields = ["name", "external_id", "location", "tenant__name"]
    readonly_fields = ["id", "created_at", "last_reading_at"]
    fields = ["id", "tenant", "external_id", "name", "location", "created_at", "last_reading_at"]
    inlines = [SensorInline]

    def get_queryset(self, request):
        # The newest reading of each sensor is one step down the (sensor, ts) index;
        # the machine's is the newest of those, never a scan of its readings.
        newest_of_sensor = SensorReading.objects.filter(sensor_id=OuterRef("pk")).order_by("-ts").values("ts")[:1]
        newest_of_machine = (
            Sensor.objects.filter(machine_id=OuterRef("pk"))
            .annotate(latest=Subquery(newest_of_sensor))
            .order_by(F("latest").desc(nulls_last=True))
            .values("latest")[:1]
        )
        return super().get_queryset(request).annotate(last_reading_at=Subquery(newest_of_machine))

    @admin.display(description="last reading", ordering="last_reading_at")
    def last_reading_at(self, machine: Machine):
        return machine.last_reading_at

    def get_deleted_objects(self, objs, request):
        # Django's confirmation page loads every related row to list it: millions of
        # readings. Name the machines and sensors, and count the readings instead.
        machines = list(objs)
        sensors = list(Sensor.objects.filter(machine__in=machines).select_related("machine"))
        reading_count = SensorReading.objects.filter(sensor__machine__in=machines).count()
        to_delete = []
        for machine in machines:
            own = [f"Sensor: {sensor}" for sensor in sensors if sensor.machine_id == machine.pk]
            to_delete.extend([f"Machine: {machine}", own])
        model_count = {
            Machine._meta.verbose_name_plural: len(machines),
            Sensor._meta.verbose_name_plural: len(sensors),
            SensorReading._meta.verbose_name_plural: reading_count,
        }
        perms_needed = set() if self.has_delete_permission(request) else {Machine._meta.verbose_name}
        return to_delete, model_count, perms_needed, []


@admin.register(SensorReading)
class SensorReadingAdmin(_ReadOnlyAdmin):
    list_display = ["ts", "sensor", "value", "tenant"]
    list_filter = ["sensor__kind", "tenant"]
    list_select_related = ["sensor__machine", "tenant"]
    # Exact matches only: a substring search over the readings table would scan it.
    search_fields = ["=sensor__machine__external_id", "=sensor__key"]
    search_help_text = "A machine's external id or a sensor key, exactly."
    # Newest first by id (insertion order): the primary key index, whatever the filter.
    ordering = ["-id"]
    fields = ["id", "tenant", "sensor", "ts", "value"]


class LatestPerKeyFilter(admin.SimpleListFilter):
    """By default the newest heartbeat of each key: is each agent alive, and since when not?"""

    title = "heartbeats"
    parameter_name = "show"

    def lookups(self, request, model_admin):
        return [("all", "All heartbeats")]

    def choices(self, changelist):
        yield {
            "selected": self.value() is None,
            "query_string": changelist.get_query_string(remove=[self.parameter_name]),
            "display": "Latest of each API key",
        }
        for lookup, title in self.lookup_choices:
            yield {
                "selected": self.value() == lookup,
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }

    def queryset(self, request, queryset):
        if self.value() == "all":
            return queryset
        return queryset.filter(pk__in=selectors.heartbeat_latest_per_key().values("pk"))


@admin.register(AgentHeartbeat)
class AgentHeartbeatAdmin(_ReadOnlyAdmin):
    list_display = ["api_key", "received_at", "tenant", "agent_version", "hostname", "client_ip"]
    list_filter = [LatestPerKeyFilter, "tenant"]
    list_select_related = ["api_key", "tenant"]
    search_fields = ["hostname", "agent_version", "=api_key__prefix"]
    # Insertion order is time order; the primary key index serves it on the whole table.
    ordering = ["-id"]
    fields = ["api_key", "tenant", "received_at", "agent_version", "hostname", "client_ip"]
