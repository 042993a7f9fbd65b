"""The Django admin for API keys (platform staff, and tenant admins for their tenant).

Keys are created, changed and revoked through the services, so the rules and the
audit trail are the API's. A new key is shown once, after a redirect (core.reveal
holds it encrypted for that one page); the digest is never shown. Keys are revoked,
never deleted: a deleted key would take its audit trail and heartbeats with it.
"""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from apikeys import observed, scopes, selectors
from apikeys.admin_restrictions import (
    RESTRICTION_FIELDS,
    AllowObservedActionMixin,
    RestrictionsFormMixin,
    acting_on,
    is_new,
)
from apikeys.models import ApiKey, ApiKeyPolicy
from apikeys.services import (
    POLICY_DEFAULTS,
    api_key_create,
    api_key_policy_update,
    api_key_policy_validate,
    api_key_revoke,
    api_key_rotate,
    api_key_update,
    api_key_validate,
)
from core import errors
from core.admin import OneTimeRevealAdminMixin, ServiceBackedAdmin
from core.caller import Caller


class ApiKeyForm(RestrictionsFormMixin, forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        choices=scopes.scope_choices,
        widget=forms.CheckboxSelectMultiple,
        initial=scopes.DEFAULT_SCOPES,
        help_text="Presets: " + "; ".join(f"{name} = {', '.join(s)}" for name, s in scopes.PRESETS.items()) + ".",
    )

    class Meta:
        model = ApiKey
        fields = ["tenant", "name", "scopes", "expires_at", "requests_per_minute", "readings_per_minute"]
        help_texts = {
            "requests_per_minute": "Empty = the tier's cap. Per key, over a sliding minute.",
            "readings_per_minute": "Empty = the tier's cap. Ingested readings per key, over a sliding minute.",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.init_restrictions()

    def clean(self):
        cleaned = super().clean()
        self.clean_restrictions()
        if self.errors:
            return cleaned
        # An unchanged expiry that has since passed must not block renaming the key.
        adding = is_new(self.instance)
        expiry_changed = adding or "expires_at" in self.changed_data
        try:
            tenant = cleaned.get("tenant") or getattr(self.instance, "tenant", None)
            api_key_validate(
                name=cleaned.get("name", ""),
                scopes_requested=cleaned.get("scopes", []),
                expires_at=cleaned.get("expires_at") if expiry_changed else None,
                # The tenant's key policy, for a new key (a change is checked by api_key_update).
                tenant_id=tenant.pk if tenant is not None and adding else None,
            )
        except ValidationError as exc:
            self.add_error(None, exc)
        return cleaned


class StatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [("active", "Active"), ("expired", "Expired"), ("revoked", "Revoked")]

    def queryset(self, request, queryset: QuerySet) -> QuerySet:
        now = timezone.now()
        expired = Q(expires_at__isnull=False, expires_at__lte=now)
        if self.value() == "active":
            return queryset.filter(revoked_at__isnull=True).exclude(expired)
        if self.value() == "expired":
            return queryset.filter(expired, revoked_at__isnull=True)
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        return queryset


@admin.register(ApiKey)
class ApiKeyAdmin(AllowObservedActionMixin, OneTimeRevealAdminMixin, ServiceBackedAdmin):
    form = ApiKeyForm
    tenant_admin_permissions = frozenset({"view", "add", "change"})
    reveal_purpose = "key"
    reveal_title = "API key created"
    list_display = [
        "name",
        "tenant",
        "prefix",
        "scope_list",
        "created_at",
        "expires_at",
        "last_used_at",
        "disabled",
        "revoked",
    ]
    list_filter = [StatusFilter, "disabled", "tenant", "created_at", "expires_at"]
    list_select_related = ["tenant"]
    search_fields = ["name", "prefix", "tenant__name", "id"]
    date_hierarchy = "created_at"
    actions = ["revoke_selected", "allow_observed", "rotate_selected", "disable_selected", "enable_selected"]
    # key_digest is in neither list: the admin never shows it.
    readonly_fields = [
        "id",
        "prefix",
        "created_by",
        "created_at",
        "last_used_at",
        "last_used_ip",
        "revoked_at",
        "observed_addresses",
    ]

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["tenant", "name", "scopes", "expires_at"]
        return [
            "id",
            "tenant",
            "name",
            "prefix",
            "scopes",
            "expires_at",
            *RESTRICTION_FIELDS,
            *self.readonly_fields[2:],
        ]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return super().get_readonly_fields(request, obj)  # the tenant among them: a key never moves

    def has_delete_permission(self, request, obj=None) -> bool:
        # Revoked, never deleted (the "Revoke selected keys" action, or the API's DELETE).
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        # A revoked key is history: it can be looked at, not changed.
        if obj is not None and obj.is_revoked:
            return False
        return super().has_change_permission(request, obj)

    @admin.display(description="scopes")
    def scope_list(self, obj: ApiKey) -> str:
        return ", ".join(obj.scopes)

    @admin.display(description="observed addresses (30 days)")
    def observed_addresses(self, obj: ApiKey) -> str:
        uses = observed.observed_ips(api_key=obj)
        if not uses:
            return "none yet"
        return "; ".join(
            f"{use.network}: {use.requests} requests, last {use.last_seen:%Y-%m-%d %H:%M} UTC" for use in uses
        )

    @admin.display(description="revoked", boolean=True, ordering="revoked_at")
    def revoked(self, obj: ApiKey) -> bool:
        return obj.is_revoked

    def save_through_service(self, request: HttpRequest, form, *, by: Caller, change: bool) -> ApiKey:
        data = form.cleaned_data
        if change:
            # The stored row, not the form's instance (the form has already written its values onto that).
            current = selectors.api_key_list(tenant_id=by.tenant_id).select_related("tenant").get(pk=form.instance.pk)
            updates = {field: data[field] for field in ("name", "expires_at") if field in form.changed_data}
            if "scopes" in form.changed_data:
                updates["scopes_requested"] = data["scopes"]
            updates.update(form.restriction_changes())
            return api_key_update(by=by, api_key=current, **updates)
        issued = api_key_create(
            by=by, name=data["name"], scopes_requested=data["scopes"], expires_at=data.get("expires_at")
        )
        issued.api_key._issued_secret = issued.secret  # for response_add's one-time page, on the saved row
        return issued.api_key

    def reveal_details(self, obj: ApiKey) -> list[tuple[str, str]]:
        return [
            ("Name", obj.name),
            ("Tenant", str(obj.tenant)),
            ("Prefix", obj.prefix),
            ("Scopes", ", ".join(obj.scopes)),
            ("Expires", str(obj.expires_at) if obj.expires_at else "never"),
        ]

    @admin.action(description="Revoke selected keys", permissions=["change"])
    def revoke_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        revoked = 0
        for api_key in queryset.filter(revoked_at__isnull=True):
            try:
                api_key_revoke(by=acting_on(request, api_key), api_key=api_key)
            except errors.NotFound:
                continue
            revoked += 1
        skipped = queryset.count() - revoked
        message = f"Revoked {revoked} API key{'s' if revoked != 1 else ''}."
        if skipped:
            message += f" {skipped} {'was' if skipped == 1 else 'were'} already revoked."
        self.message_user(request, message, messages.SUCCESS)

    @admin.action(description="Rotate the selected key (shows its new secret once)", permissions=["change"])
    def rotate_selected(self, request: HttpRequest, queryset: QuerySet):
        """One key at a time: its new secret goes to the one-time page; the old one works for an hour."""
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one key to rotate.", messages.ERROR)
            return None
        api_key = queryset.get()
        try:
            issued = api_key_rotate(by=acting_on(request, api_key), api_key=api_key)
        except errors.NotFound:
            self.message_user(request, "A revoked key cannot be rotated.", messages.ERROR)
            return None
        except (ValidationError, errors.Conflict) as exc:
            text = exc.message if isinstance(exc, errors.Conflict) else " ".join(exc.messages)
            self.message_user(request, f"Not rotated: {text}", messages.ERROR)
            return None
        return self.reveal_redirect(request, issued.api_key, issued.secret)

    def _set_disabled(self, request: HttpRequest, queryset: QuerySet, disabled: bool) -> None:
        changed = 0
        for api_key in queryset.filter(revoked_at__isnull=True, disabled=not disabled):
            api_key_update(by=acting_on(request, api_key), api_key=api_key, disabled=disabled)
            changed += 1
        verb = "Disabled" if disabled else "Enabled"
        self.message_user(request, f"{verb} {changed} API key{'s' if changed != 1 else ''}.", messages.SUCCESS)

    @admin.action(description="Disable selected keys (they can be enabled again)", permissions=["change"])
    def disable_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._set_disabled(request, queryset, True)

    @admin.action(description="Enable selected keys", permissions=["change"])
    def enable_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._set_disabled(request, queryset, False)


class ApiKeyPolicyForm(forms.ModelForm):
    notify_days_before_expiry = forms.CharField(
        required=False,
        initial="7, 1",
        help_text="Days before expiry to send api_key.expiring, comma-separated, each 1 to 90.",
    )
    webhook_url = forms.CharField(
        required=False,
        max_length=2048,
        label="Webhook URL",
        help_text=(
            "Where the api_key.* events go (signed). A new URL gets a new signing secret, shown once after "
            "saving; empty = no webhooks."
        ),
    )

    class Meta:
        model = ApiKeyPolicy
        fields = [
            "tenant",
            "max_lifetime_days",
            "require_expiry",
            "notify_days_before_expiry",
            "notify_unused_after_days",
            "leaked_key_action",
            "webhook_url",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        days = self.initial.get("notify_days_before_expiry")
        if isinstance(days, list):
            self.initial["notify_days_before_expiry"] = ", ".join(str(day) for day in days)
        if self.instance.tenant_id is not None:
            from webhooks.selectors import webhook_endpoint_get

            endpoint = webhook_endpoint_get(tenant_id=self.instance.tenant_id)
            self.initial.setdefault("webhook_url", endpoint.url if endpoint is not None else "")

    def clean_webhook_url(self) -> str | None:
        from webhooks.services import webhook_url_validate

        url = (self.cleaned_data.get("webhook_url") or "").strip()
        if not url:
            return None
        if "webhook_url" not in self.changed_data:
            return url  # kept as it is: it was checked when it was set
        try:
            return webhook_url_validate(url)
        except ValidationError as exc:
            raise ValidationError(exc.message_dict["webhook_url"]) from None

    def clean_notify_days_before_expiry(self) -> list[int]:
        raw = self.cleaned_data.get("notify_days_before_expiry") or ""
        try:
            days = [int(part) for part in raw.replace(" ", "").split(",") if part]
        except ValueError:
            raise ValidationError("Whole numbers of days, separated by commas.") from None
        return days

    def clean(self):
        cleaned = super().clean()
        try:
            api_key_policy_validate(cleaned)
        except ValidationError as exc:
            for field, problems in exc.message_dict.items():
                self.add_error(field, problems)
        return cleaned


@admin.register(ApiKeyPolicy)
class ApiKeyPolicyAdmin(OneTimeRevealAdminMixin, ServiceBackedAdmin):
    """The tenant's key policy and webhook URL, saved through api_key_policy_update (audited; keys are
    never rewritten). A new webhook URL's signing secret is shown once, after a redirect, as the API's
    PUT shows it once."""

    form = ApiKeyPolicyForm
    tenant_admin_permissions = frozenset({"view", "add", "change"})
    list_display = ["tenant", "max_lifetime_days", "require_expiry", "notify_unused_after_days", "leaked_key_action"]
    reveal_purpose = "webhook-secret"
    reveal_title = "Webhook signing secret"

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # set it back to the defaults instead: the change is audited

    def save_through_service(self, request: HttpRequest, form, *, by: Caller, change: bool) -> ApiKeyPolicy:
        values = {field: form.cleaned_data.get(field, POLICY_DEFAULTS[field]) for field in POLICY_DEFAULTS}
        values["webhook_url"] = form.cleaned_data.get("webhook_url")
        saved, secret = api_key_policy_update(by=by, values=values)
        if secret:
            saved._webhook_secret = secret  # for the one-time page, on the saved row
        return saved

    def _reveal_or(self, request: HttpRequest, obj: ApiKeyPolicy, answer) -> HttpResponse:
        secret = obj.__dict__.pop("_webhook_secret", None)
        return self.reveal_redirect(request, obj, secret) if secret else answer()

    def response_add(self, request: HttpRequest, obj: ApiKeyPolicy, post_url_continue=None) -> HttpResponse:
        return self._reveal_or(request, obj, lambda: super(ApiKeyPolicyAdmin, self).response_add(request, obj))

    def response_change(self, request: HttpRequest, obj: ApiKeyPolicy) -> HttpResponse:
        return self._reveal_or(request, obj, lambda: super(ApiKeyPolicyAdmin, self).response_change(request, obj))

    def reveal_details(self, obj: ApiKeyPolicy) -> list[tuple[str, str]]:
        from webhooks.selectors import webhook_endpoint_get

        endpoint = webhook_endpoint_get(tenant_id=obj.tenant_id)
        return [
            ("Tenant", str(obj.tenant)),
            ("Webhook URL", endpoint.url if endpoint is not None else ""),
            ("Header", 'X-Haltless-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">'),
        ]


# Enrollment tokens have a page of their own (apikeys.admin_enrollment), registered with the rest.
from apikeys import admin_enrollment  # noqa: E402, F401
