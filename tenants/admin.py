from django import forms
from django.contrib import admin

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
