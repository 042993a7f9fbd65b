"""The Django admin for enrollment tokens: create one (shown once), see what it enrolled, end it.

Tokens are created and deleted through apikeys.enrollment, so the rules and the
audit trail are the API's. A token is never changed: it is deleted (its row is
kept, so its keys still say where they came from), optionally with every key it
enrolled revoked.
"""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from apikeys import enrollment, scopes
from apikeys.admin_restrictions import acting_on
from apikeys.models import ApiKey, EnrollmentToken
from core.admin import OneTimeRevealAdminMixin, ServiceBackedAdmin
from core.caller import Caller


class EnrollmentTokenForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        choices=scopes.scope_choices,
        widget=forms.CheckboxSelectMultiple,
        initial=scopes.DEFAULT_SCOPES,
        help_text="The scopes of every key a device enrolls with this token.",
    )

    class Meta:
        model = EnrollmentToken
        fields = ["tenant", "name", "scopes", "max_uses", "expires_at", "key_expires_in_days"]
        help_texts = {
            "max_uses": f"How many devices may enroll, 1 to {enrollment.MAX_USES}.",
            "expires_at": "Within 7 days.",
            "key_expires_in_days": f"Lifetime of each minted key, 1 to {enrollment.MAX_KEY_LIFETIME_DAYS} days; "
            "empty = no expiry.",
        }

    def clean(self):
        cleaned = super().clean()
        tenant = cleaned.get("tenant") or getattr(self.instance, "tenant", None)
        if self.errors or tenant is None:
            return cleaned
        try:
            self.validated = enrollment.enrollment_token_validate(
                tenant_id=tenant.pk,
                name=cleaned.get("name", ""),
                expires_at=cleaned.get("expires_at"),
                scopes_requested=cleaned.get("scopes", []),
                max_uses=cleaned.get("max_uses"),
                key_expires_in_days=cleaned.get("key_expires_in_days"),
            )
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                self.add_error(field if field in self.fields else None, errors)
        return cleaned


@admin.register(EnrollmentToken)
class EnrollmentTokenAdmin(OneTimeRevealAdminMixin, ServiceBackedAdmin):
    form = EnrollmentTokenForm
    # "change" only for the delete actions; every field of a saved token is read-only.
    tenant_admin_permissions = frozenset({"view", "add", "change"})
    reveal_purpose = "enrollment-token"
    reveal_title = "Enrollment token created"
    list_display = ["name", "tenant", "prefix", "uses", "max_uses", "expires_at", "deleted_at"]
    list_filter = ["tenant", "created_at", "expires_at"]
    list_select_related = ["tenant"]
    search_fields = ["name", "prefix", "tenant__name"]
    actions = ["delete_tokens", "delete_tokens_and_revoke_keys"]
    saved_fields = [
        "id",
        "tenant",
        "name",
        "prefix",
        "scopes",
        "machine_ids",
        "max_uses",
        "uses",
        "expires_at",
        "key_expires_in_days",
        "created_by",
        "created_at",
        "deleted_at",
        "enrolled",
    ]

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["tenant", "name", "scopes", "max_uses", "expires_at", "key_expires_in_days"]
        return self.saved_fields

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.saved_fields

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # deleted through the actions, which keep the row and may revoke its keys

    @admin.display(description="keys it enrolled")
    def enrolled(self, obj: EnrollmentToken) -> str:
        api_keys = ApiKey.objects.filter(enrollment_token=obj).order_by("enrolled_hostname")
        if not api_keys:
            return "none yet"
        return format_html(
            "<ul>{}</ul>",
            format_html_join(
                "",
                '<li><a href="{}">{}</a> ({})</li>',
                (
                    (
                        reverse("admin:apikeys_apikey_change", args=[api_key.pk]),
                        api_key.name,
                        "revoked" if api_key.is_revoked else api_key.status(),
                    )
                    for api_key in api_keys
                ),
            ),
        )

    def save_through_service(self, request: HttpRequest, form, *, by: Caller, change: bool) -> EnrollmentToken:
        if change:
            return form.instance  # nothing of a saved token changes (every field is read-only)
        issued = enrollment.enrollment_token_create(
            by=by,
            name=form.validated["name"],
            expires_at=form.validated["expires_at"],
            scopes_requested=form.validated["scopes"],
            max_uses=form.validated["max_uses"],
            key_expires_in_days=form.validated["key_expires_in_days"],
        )
        issued.token._issued_secret = issued.secret  # for response_add's one-time page, on the saved row
        return issued.token

    def reveal_details(self, obj: EnrollmentToken) -> list[tuple[str, str]]:
        return [
            ("Name", obj.name),
            ("Tenant", str(obj.tenant)),
            ("Prefix", obj.prefix),
            ("Scopes", ", ".join(obj.scopes)),
            ("Uses", f"{obj.uses} of {obj.max_uses}"),
            ("Expires", str(obj.expires_at)),
        ]

    def _delete(self, request: HttpRequest, queryset: QuerySet, *, revoke_keys: bool) -> None:
        deleted = revoked = 0
        for token in queryset.filter(deleted_at__isnull=True):
            revoked += enrollment.enrollment_token_delete(
                by=acting_on(request, token), token=token, revoke_keys=revoke_keys
            )
            deleted += 1
        message = f"Deleted {deleted} enrollment token{'s' if deleted != 1 else ''}."
        if revoke_keys:
            message += f" Revoked {revoked} API key{'s' if revoked != 1 else ''}."
        self.message_user(request, message, messages.SUCCESS)

    @admin.action(description="Delete selected tokens (their keys keep working)", permissions=["change"])
    def delete_tokens(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._delete(request, queryset, revoke_keys=False)

    @admin.action(description="Delete selected tokens and revoke every key they enrolled", permissions=["change"])
    def delete_tokens_and_revoke_keys(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._delete(request, queryset, revoke_keys=True)
