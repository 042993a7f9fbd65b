from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db import models

from core.admin import ServiceBackedAdmin
from core.caller import Caller
from tenants import services, tiers
from tenants.models import Tenant


class TenantForm(forms.ModelForm):
    tier = forms.ChoiceField(choices=tiers.tier_choices)

    class Meta:
        model = Tenant
        fields = ["name", "tier"]

    def clean(self):
        cleaned = super().clean()
        if not self.errors:  # the service's rules, shown on the form
            try:
                cleaned["name"], cleaned["tier"] = services.tenant_validate(
                    name=cleaned["name"], tier=cleaned["tier"], exclude_pk=self.instance.pk
                )
            except ValidationError as exc:
                for name, messages in exc.message_dict.items():
                    self.add_error(name, messages)
        return cleaned


@admin.register(Tenant)
class TenantAdmin(ServiceBackedAdmin):
    """Platform staff's page of tenants; a tenant admin has none of it (a tenant is no tenant's row)."""

    form = TenantForm
    tenant_path = "id"
    tenant_admin_permissions = frozenset()
    list_display = ["name", "tier", "retention_days", "created_at", "id"]
    list_filter = ["tier"]
    search_fields = ["name", "id"]
    readonly_fields = ["id", "created_at"]

    def get_queryset(self, request):
        # Not scoped: a tenant is no tenant's row, and a tenant admin may do nothing here (403, as on
        # any platform page), so the scoping of TenantScopedAdmin has nothing to do.
        return admin.ModelAdmin.get_queryset(self, request)

    def save_through_service(self, request, form, *, by: Caller, change: bool) -> Tenant:
        data = form.cleaned_data
        if not change:
            return services.tenant_create(name=data["name"], tier=data["tier"])
        return services.tenant_update(by=by, tenant=form.instance, name=data["name"], tier=data["tier"])

    def delete_through_service(self, request, obj: Tenant, *, by: Caller) -> None:
        services.tenant_delete(by=by, tenant=obj)

    @admin.display(description="retention (days)")
    def retention_days(self, obj: Tenant) -> int | None:
        return obj.retention_days if obj.tier in tiers.tier_names() else None

    def get_deleted_objects(self, objs, request):
        """Counts per kind of row, never the rows: a tenant has millions of readings.

        Django's own page loads every related row to list it (9.7 s on the demo data).
        Rows that protect the tenant (its users) are named as what stops the deletion.
        """
        tenants = list(objs)
        to_delete: list = []
        model_count: dict[str, int] = {}
        protected: list[str] = []
        relations = [
            field
            for field in Tenant._meta.get_fields(include_hidden=True)
            if (field.one_to_many or field.one_to_one) and field.auto_created and not field.concrete
        ]
        for tenant in tenants:
            to_delete.append(f"Tenant: {tenant}")
        for relation in relations:
            related = relation.related_model
            count = related._base_manager.filter(**{f"{relation.field.name}__in": tenants}).count()
            if not count:
                continue
            label = str(related._meta.verbose_name_plural)
            if relation.on_delete is models.PROTECT:
                protected.append(f"{label.capitalize()}: {count} (deactivate, do not delete, the tenant's people)")
            else:
                model_count[label] = count
        model_count[str(Tenant._meta.verbose_name_plural)] = len(tenants)
        perms_needed = set() if self.has_delete_permission(request) else {str(Tenant._meta.verbose_name)}
        return to_delete, model_count, perms_needed, protected
