from django import forms
from django.contrib import admin
from django.core.paginator import Paginator
from django.db.models import Count, F, OuterRef, Subquery
from django.urls import reverse
from django.utils.functional import cached_property
from django.utils.html import format_html

from core.admin import ServiceBackedAdmin, TenantScopedReadOnlyAdmin
from core.caller import Caller
from telemetry import selectors, services
from telemetry.models import AgentHeartbeat, Machine, Sensor, SensorReading


class BoundedCountPaginator(Paginator):
    """Counts at most LIMIT rows: readings and heartbeats are far too many for COUNT(*).

    Past the limit the list still pages up to it; a filter narrows it further.
    """

    LIMIT = 10_000

    @cached_property
    def count(self) -> int:
        return self.object_list[: self.LIMIT].count()


class _RecordAdmin(TenantScopedReadOnlyAdmin):
    """Rows written only by edge agents: viewable, never added, changed or deleted here."""

    paginator = BoundedCountPaginator
    show_full_result_count = False
    list_per_page = 100


def _deleted_objects_summary(machines, sensors, reading_count: int, *, with_machines: bool):
    """Django's confirmation page lists every related row: millions of readings. Name and count instead."""
    to_delete = []
    if with_machines:
        for machine in machines:
            own = [f"Sensor: {sensor.key} ({sensor.kind})" for sensor in sensors if sensor.machine_id == machine.pk]
            to_delete.extend([f"Machine: {machine}", own])
    else:
        to_delete = [f"Sensor: {sensor}" for sensor in sensors]
    model_count = {}
    if with_machines:
        model_count[Machine._meta.verbose_name_plural] = len(machines)
    model_count[Sensor._meta.verbose_name_plural] = len(sensors)
    model_count[SensorReading._meta.verbose_name_plural] = reading_count
    return to_delete, model_count


class SensorInline(admin.TabularInline):
    """The machine's sensors. Key and kind are fixed once readings can hang on them; deleting
    one is its own page, which counts the readings that go with it and asks."""

    model = Sensor
    extra = 0
    can_delete = False
    fields = ["key", "kind", "canonical_unit", "delete_link"]
    readonly_fields = ["key", "kind", "canonical_unit", "delete_link"]
    verbose_name_plural = "sensors"

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_view_permission(self, request, obj=None) -> bool:
        return self.admin_site._registry[Machine].has_view_permission(request, obj)

    @admin.display(description="canonical unit")
    def canonical_unit(self, sensor: Sensor) -> str:
        return sensor.canonical_unit if sensor.kind else "-"

    @admin.display(description="delete")
    def delete_link(self, sensor: Sensor) -> str:
        if not sensor.pk:
            return ""
        url = reverse("admin:telemetry_sensor_delete", args=[sensor.pk])
        return format_html('<a class="deletelink" href="{}">Delete…</a>', url)


class NewSensorForm(forms.ModelForm):
    class Meta:
        model = Sensor
        fields = ["key", "kind"]


class NewSensorFormSet(forms.BaseInlineFormSet):
    @classmethod
    def get_default_prefix(cls) -> str:
        return "new_sensors"  # distinct from the existing sensors' "sensors" rows

    def get_queryset(self):
        return Sensor.objects.none()  # only new rows here; the existing ones are in SensorInline

    def clean(self):
        super().clean()
        taken = set(Sensor.objects.filter(machine_id=self.instance.pk).values_list("key", flat=True))
        seen: set[str] = set()
        for form in self.forms:
            key = (form.cleaned_data or {}).get("key")
            if not key or form.cleaned_data.get("DELETE"):
                continue
            key = key.strip()
            if key in taken:
                form.add_error("key", services.DUPLICATE_SENSOR_KEY.format(key=key))
            elif key in seen:
                form.add_error("key", services.SENSOR_GIVEN_TWICE.format(key=key))
            seen.add(key)

    def validate_unique(self):
        pass  # done in clean() against the machine's sensors too


class NewSensorInline(admin.TabularInline):
    model = Sensor
    form = NewSensorForm
    formset = NewSensorFormSet
    fields = ["key", "kind"]
    extra = 2
    can_delete = False
    verbose_name = "new sensor"
    verbose_name_plural = "add sensors"

    def get_extra(self, request, obj=None, **kwargs):
        return 2 if obj is None else 1

    def has_add_permission(self, request, obj=None) -> bool:
        return self.admin_site._registry[Machine].has_change_permission(request, obj) or (
            obj is None and self.admin_site._registry[Machine].has_add_permission(request)
        )

    def has_change_permission(self, request, obj=None) -> bool:
        return self.has_add_permission(request, obj)

    def has_view_permission(self, request, obj=None) -> bool:
        return self.has_add_permission(request, obj)


class MachineForm(forms.ModelForm):
    class Meta:
        model = Machine
        fields = ["tenant", "external_id", "name", "location"]

    def clean(self):
        cleaned = super().clean()
        if "external_id" not in self.fields:
            return cleaned  # a change: only the name and location change, checked by machine_update
        tenant = cleaned.get("tenant")
        tenant_id = tenant.pk if tenant is not None else self.instance.tenant_id
        if tenant_id is None or not cleaned.get("external_id") or not cleaned.get("name"):
            return cleaned  # a field Django already refused
        # The service's own rule, shown on the form rather than raised when saving.
        problems = services.machine_create_errors(
            tenant_id=tenant_id,
            external_id=cleaned["external_id"],
            name=cleaned["name"],
            location=cleaned.get("location") or "",
        )
        for field, messages in problems.items():
            if field in self.fields and field not in self.errors:
                for message in messages:
                    self.add_error(field, message)
        return cleaned


@admin.register(Machine)
class MachineAdmin(ServiceBackedAdmin):
    form = MachineForm
    list_display = ["name", "external_id", "tenant", "location", "sensor_count", "last_reading_at", "created_at"]
    list_filter = ["tenant"]
    list_select_related = ["tenant"]
    search_fields = ["name", "external_id", "location", "tenant__name"]
    ordering = ["name", "id"]
    readonly_fields = ["id", "created_at", "last_reading_at"]
    fields = ["id", "tenant", "external_id", "name", "location", "created_at", "last_reading_at"]
    inlines = [SensorInline, NewSensorInline]

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
        return (
            super()
            .get_queryset(request)
            .annotate(last_reading_at=Subquery(newest_of_machine), sensor_count=Count("sensors", distinct=True))
        )

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["tenant", "external_id", "name", "location"]
        return self.fields

    def get_inline_instances(self, request, obj=None):
        inlines = super().get_inline_instances(request, obj)
        # A new machine has no sensors to show yet: only the rows that add them.
        return inlines if obj is not None else [i for i in inlines if not isinstance(i, SensorInline)]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        # What agents know the machine by, and whose readings these are, never change.
        return [*super().get_readonly_fields(request, obj), "external_id"]

    @admin.display(description="last reading", ordering="last_reading_at")
    def last_reading_at(self, machine: Machine):
        return machine.last_reading_at

    @admin.display(description="sensors", ordering="sensor_count")
    def sensor_count(self, machine: Machine) -> int:
        return machine.sensor_count

    def save_through_service(self, request, form, *, by: Caller, change: bool) -> Machine:
        data = form.cleaned_data
        if change:
            return services.machine_update(
                by=by, machine=form.instance, name=data.get("name"), location=data.get("location")
            )
        return services.machine_create(
            by=by, external_id=data["external_id"], name=data["name"], location=data.get("location", "")
        )

    def save_formset(self, request, form, formset, change: bool) -> None:
        if formset.model is not Sensor or not isinstance(formset, NewSensorFormSet):
            return super().save_formset(request, form, formset, change)
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        new = [
            data for data in (f.cleaned_data or {} for f in formset.forms) if data.get("key") and not data.get("DELETE")
        ]
        if not new:
            return
        by = self.caller(request, form)
        # The machine the service saved (on add, not the form's unsaved instance): by its external id.
        external_id = form.instance.external_id if change else form.cleaned_data["external_id"]
        machine = selectors.machine_list(tenant_id=by.tenant_id).get(external_id=external_id.strip())
        for data in new:
            sensor = services.sensor_create(by=by, machine=machine, key=data["key"], kind=data["kind"])
            formset.new_objects.append(sensor)

    def get_deleted_objects(self, objs, request):
        machines = list(objs)
        sensors = list(Sensor.objects.filter(machine__in=machines).select_related("machine"))
        reading_count = services.machine_deletion_counts(machines=machines).readings
        to_delete, model_count = _deleted_objects_summary(machines, sensors, reading_count, with_machines=True)
        perms_needed = set() if self.has_delete_permission(request) else {Machine._meta.verbose_name}
        held = [reason for m in machines if (reason := services.deletion_held_reason(machine=m))]
        return to_delete, model_count, perms_needed, held

    def delete_through_service(self, request, obj: Machine, *, by: Caller) -> None:
        services.machine_delete(by=by, machine=obj)


@admin.register(Sensor)
class SensorAdmin(ServiceBackedAdmin):
    """Sensors are added on their machine's page; here each can be looked at and deleted."""

    tenant_path = "machine__tenant"
    tenant_admin_permissions = frozenset({"view", "delete"})
    list_display = ["key", "kind", "machine"]
    list_filter = ["kind"]
    list_select_related = ["machine"]
    search_fields = ["key", "machine__name", "=machine__external_id"]
    fields = ["machine", "key", "kind"]
    readonly_fields = ["machine", "key", "kind"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def get_deleted_objects(self, objs, request):
        sensors = list(objs)
        reading_count = services.sensor_deletion_counts(sensors=sensors).readings
        to_delete, model_count = _deleted_objects_summary([], sensors, reading_count, with_machines=False)
        perms_needed = set() if self.has_delete_permission(request) else {Sensor._meta.verbose_name}
        held = [reason for s in sensors if (reason := services.deletion_held_reason(machine=s.machine, sensor=s))]
        return to_delete, model_count, perms_needed, held

    def delete_through_service(self, request, obj: Sensor, *, by: Caller) -> None:
        services.sensor_delete(by=by, sensor=obj)

    def delete_queryset(self, request, queryset) -> None:
        super().delete_queryset(request, queryset.select_related("machine"))

    def response_delete(self, request, obj_display, obj_id):
        # Back to the machine the sensor was on, where it was deleted from.
        response = super().response_delete(request, obj_display, obj_id)
        machine_id = getattr(request, "_deleted_sensor_machine_id", None)
        if machine_id is not None and self.admin_site._registry[Machine].has_view_permission(request):
            response["Location"] = reverse("admin:telemetry_machine_change", args=[machine_id])
        return response

    def delete_view(self, request, object_id, extra_context=None):
        sensor = self.get_object(request, object_id)
        if sensor is not None:
            request._deleted_sensor_machine_id = sensor.machine_id
        return super().delete_view(request, object_id, extra_context)


@admin.register(SensorReading)
class SensorReadingAdmin(_RecordAdmin):
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
class AgentHeartbeatAdmin(_RecordAdmin):
    list_display = ["api_key", "received_at", "tenant", "agent_version", "hostname", "client_ip"]
    list_filter = [LatestPerKeyFilter, "tenant"]
    list_select_related = ["api_key", "tenant"]
    search_fields = ["hostname", "agent_version", "=api_key__prefix"]
    # Insertion order is time order; the primary key index serves it on the whole table.
    ordering = ["-id"]
    fields = ["api_key", "tenant", "received_at", "agent_version", "hostname", "client_ip"]
