from django import forms
from django.contrib import admin
from django.db import models

from tenants import tiers
from tenants.models import Tenant


class TenantForm(forms.ModelForm):
    tier = forms.ChoiceField(choices=tiers.tier_choices)

    class Meta:
        model = Tenant
        fields = ["name", "tier"]


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    form = TenantForm
    list_display = ["name", "tier", "retention_days", "created_at", "id"]
    list_filter = ["tier"]
    search_fields = ["name", "id"]
    readonly_fields = ["id", "created_at"]

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
