"""The plant-floor restrictions of a key in the admin: machine scope, allowlist, rate limits, and
"Allow what this key uses" (the observed addresses become the allowlist, after a confirmation page).

Everything is saved through apikeys.services.api_key_update, so the rules and the
audit event (`api_key.update`) are the API's.
"""

import ipaddress

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse

from apikeys import machine_scope, network, observed
from apikeys.models import ApiKey
from apikeys.services import api_key_update, api_key_validate_restrictions
from core.caller import Caller, caller_of

RESTRICTION_FIELDS = ["machines", "allowed_cidrs", "requests_per_minute", "readings_per_minute"]
ALLOW_OBSERVED_TEMPLATE = "admin/apikeys/apikey/allow_observed.html"


def is_new(instance) -> bool:
    """Whether a form's key or token is not saved yet (its creation time is set by the first save)."""
    return instance.created_at is None


def acting_on(request: HttpRequest, obj) -> Caller:
    """The admin user acting on `obj`'s tenant (platform staff act on any; a tenant admin sees only theirs)."""
    return caller_of(request).on_tenant(obj.tenant_id)


def _lines(text: str) -> list[str]:
    return [line.strip() for line in (text or "").replace(",", "\n").splitlines() if line.strip()]


class RestrictionsFormMixin(forms.Form):
    """Extra fields of the change form; the ModelForm it is mixed into keeps the rest."""

    machines = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Machine external ids, one per line; empty = every machine of the tenant.",
    )
    allowed_cidrs = forms.CharField(
        required=False,
        label="Allowed networks",
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text=(
            f"IPv4/IPv6 networks, one per line (at most {network.MAX_ALLOWED_CIDRS}; a bare address is one host); "
            "empty = anywhere. See the key's observed addresses below."
        ),
    )

    def init_restrictions(self) -> None:
        api_key = self.instance
        if api_key.pk:
            names = machine_scope.external_ids([api_key.machine_ids])
            scope = machine_scope.scope_as_external_ids(api_key.machine_ids, names)
            self.initial.setdefault("machines", "\n".join(scope or []))
            self.initial.setdefault("allowed_cidrs", "\n".join(api_key.allowed_cidrs))

    def restriction_changes(self) -> dict:
        """The api_key_update arguments for the restrictions that changed on the form."""
        data, changed = self.cleaned_data, set(self.changed_data)
        updates = {}
        if "machines" in changed:
            updates["machines"] = _lines(data.get("machines")) or None
        if "allowed_cidrs" in changed:
            updates["allowed_cidrs"] = _lines(data.get("allowed_cidrs"))
        if changed & {"requests_per_minute", "readings_per_minute"}:
            updates["rate_limit"] = {
                "requests_per_minute": data.get("requests_per_minute"),
                "readings_per_minute": data.get("readings_per_minute"),
            }
        return updates

    def clean_restrictions(self) -> None:
        if is_new(self.instance) or self.errors:
            return
        try:
            api_key_validate_restrictions(api_key=self.instance, **self.restriction_changes())
        except ValidationError as exc:
            for field, messages_ in exc.message_dict.items():
                target = field if field in self.fields else None
                if field == "rate_limit":
                    target = None
                self.add_error(target, messages_)


def resulting_allowlist(api_key: ApiKey) -> tuple[list[str], list]:
    """What "allow what this key uses" would save, and the observed uses it comes from."""
    uses = observed.observed_ips(api_key=api_key)
    nets = [str(ipaddress.ip_network(use.network)) for use in uses]  # a bare IPv4 address: its /32
    return list(dict.fromkeys(nets)), uses


class AllowObservedActionMixin:
    """The "Allow what this key uses" action: shows each key's resulting list, saves only when confirmed."""

    @admin.action(description="Allow what this key uses (review first)", permissions=["change"])
    def allow_observed(self, request: HttpRequest, queryset: QuerySet) -> TemplateResponse | None:
        plans = []
        for api_key in queryset.filter(revoked_at__isnull=True).select_related("tenant"):
            result, uses = resulting_allowlist(api_key)
            problem = ""
            if not result:
                problem = "No allowed use in the last 30 days: nothing to allow (an empty list would mean anywhere)."
            elif len(result) > network.MAX_ALLOWED_CIDRS:
                problem = f"{len(result)} networks observed; an allowlist holds at most {network.MAX_ALLOWED_CIDRS}."
            plans.append({"api_key": api_key, "current": api_key.allowed_cidrs, "result": result, "uses": uses,
                          "problem": problem})  # fmt: skip
        if not plans:
            self.message_user(request, "No key to change among those selected.", messages.WARNING)
            return None
        if request.POST.get("confirm") == "yes":
            saved = 0
            for plan in plans:
                if plan["problem"]:
                    continue
                api_key_update(
                    by=acting_on(request, plan["api_key"]), api_key=plan["api_key"], allowed_cidrs=plan["result"]
                )
                saved += 1
            self.message_user(
                request, f"Saved the allowlist of {saved} key{'s' if saved != 1 else ''}.", messages.SUCCESS
            )
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Allow what these keys use?",
            "opts": self.opts,
            "plans": plans,
            "action": "allow_observed",
            "selected": [str(plan["api_key"].pk) for plan in plans],
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, ALLOW_OBSERVED_TEMPLATE, context)
