"""The Django admin's site and the bases every app's ModelAdmin builds on.

Two kinds of people use the admin:

- **platform staff** (`is_staff`): every tenant, with Django's model permissions;
- **tenant admins** (role admin, active, with a tenant): their own tenant's rows only,
  through ModelAdmins derived from `TenantScopedAdmin`, whose class attributes say
  what a tenant admin may do there. Nothing else of the admin opens for them.

`core` knows no app: a principal has `is_staff`, `is_tenant_admin` and `tenant_id`
(see docs/architecture.md, "the principal interface").
"""

from django.contrib import admin
from django.contrib.admin import RelatedOnlyFieldListFilter
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from core.admin_site import is_platform_staff, is_tenant_admin
from core.caller import Caller, caller_of
from core.reveal import reveal_hold, reveal_take

TENANT_FIELD = "tenant"
TENANT_MODEL = "tenants.Tenant"


def _tenant_id_of(obj, tenant_path: str):
    """The tenant id of `obj` along `tenant_path` ("tenant", "user__tenant", ...)."""
    *hops, last = tenant_path.split("__")
    for hop in hops:
        obj = getattr(obj, hop, None)
        if obj is None:
            return None
    return getattr(obj, f"{last}_id", None)


class TenantScopedAdmin(admin.ModelAdmin):
    """A ModelAdmin whose rows belong to a tenant: the one seam that scopes the admin.

    For a tenant admin it filters every queryset (lists, change and delete pages,
    history, actions, autocomplete), every foreign-key and many-to-many choice and
    every related filter to their tenant; hides the tenant field and fills it on add;
    and grants only `tenant_admin_permissions`. For platform staff it changes nothing
    but this: a row's tenant never changes after creation, for anyone.
    """

    # How a row reaches its tenant, as a lookup path ("tenant", "user__tenant", ...).
    tenant_path = TENANT_FIELD
    # What a tenant admin may do on this page: any of view, add, change, delete.
    tenant_admin_permissions: frozenset[str] = frozenset({"view", "add", "change", "delete"})
    view_on_site = False

    # --- who may do what -------------------------------------------------------------------
    def _tenant_admin_may(self, request, action: str, obj=None) -> bool:
        if not is_tenant_admin(request) or action not in self.tenant_admin_permissions:
            return False
        return obj is None or _tenant_id_of(obj, self.tenant_path) == request.user.tenant_id

    def has_module_permission(self, request) -> bool:
        if is_platform_staff(request):
            return super().has_module_permission(request)
        return self._tenant_admin_may(request, "view")

    def has_view_permission(self, request, obj=None) -> bool:
        if is_platform_staff(request):
            return super().has_view_permission(request, obj)
        return self._tenant_admin_may(request, "view", obj) or self._tenant_admin_may(request, "change", obj)

    def has_add_permission(self, request) -> bool:
        if is_platform_staff(request):
            return super().has_add_permission(request)
        return self._tenant_admin_may(request, "add")

    def has_change_permission(self, request, obj=None) -> bool:
        if is_platform_staff(request):
            return super().has_change_permission(request, obj)
        return self._tenant_admin_may(request, "change", obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        if is_platform_staff(request):
            return super().has_delete_permission(request, obj)
        return self._tenant_admin_may(request, "delete", obj)

    def _get_obj_does_not_exist_redirect(self, request, opts, object_id):
        # Another tenant's row, or none: 404, as in the API, on an admin page (Django's
        # own answer is a redirect to the index, "perhaps it was deleted?").
        context = {**self.admin_site.each_context(request), "title": "Not Found", "opts": opts}
        return TemplateResponse(request, "admin/not_found.html", context, status=404)

    # --- what they see ------------------------------------------------------------------------
    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if is_platform_staff(request):
            return queryset
        if not is_tenant_admin(request):
            return queryset.none()
        return queryset.for_tenant(request.user.tenant_id)

    def scope_related(self, request, queryset):
        """Choices of another model offered to a tenant admin: their tenant's only, or none."""
        if is_platform_staff(request):
            return queryset
        model = queryset.model
        if not is_tenant_admin(request):
            return queryset.none()
        if model._meta.label == TENANT_MODEL:
            return queryset.filter(pk=request.user.tenant_id)
        related_admin = self.admin_site._registry.get(model)
        if isinstance(related_admin, TenantScopedAdmin):
            return queryset.filter(**{related_admin.tenant_path: request.user.tenant_id})
        if any(field.name == TENANT_FIELD for field in model._meta.get_fields()):
            return queryset.filter(tenant=request.user.tenant_id)
        return queryset.none()  # a model this seam cannot scope (groups, permissions) is never offered

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        formfield = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if formfield is not None and hasattr(formfield, "queryset"):
            formfield.queryset = self.scope_related(request, formfield.queryset)
        return formfield

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        formfield = super().formfield_for_manytomany(db_field, request, **kwargs)
        if formfield is not None and hasattr(formfield, "queryset"):
            formfield.queryset = self.scope_related(request, formfield.queryset)
        return formfield

    def _tenant_names(self) -> set[str]:
        return {TENANT_FIELD, f"{TENANT_FIELD}__name", self.tenant_path, f"{self.tenant_path}__name"}

    def get_list_display(self, request):
        names = super().get_list_display(request)
        if is_platform_staff(request):
            return names
        return [name for name in names if name not in self._tenant_names()]

    def get_list_filter(self, request):
        filters = super().get_list_filter(request)
        if is_platform_staff(request):
            return filters
        scoped = []
        for entry in filters:
            if isinstance(entry, str) and entry in self._tenant_names():
                continue
            if isinstance(entry, str) and self._is_relation(entry):
                # Only values that occur in the tenant's own rows, never every row of the table.
                entry = (entry, RelatedOnlyFieldListFilter)
            scoped.append(entry)
        return scoped

    def _is_relation(self, lookup: str) -> bool:
        model = self.model
        field = None
        for part in lookup.split("__"):
            try:
                field = model._meta.get_field(part)
            except Exception:
                return False
            if not field.is_relation:
                return False
            model = field.related_model
        return field is not None and field.is_relation

    def get_search_fields(self, request):
        fields = super().get_search_fields(request)
        if is_platform_staff(request):
            return fields
        return [name for name in fields if name.lstrip("=^@") not in self._tenant_names()]

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if is_platform_staff(request):
            return fieldsets
        # A tenant admin has one tenant: the field is neither shown nor sent.
        return [
            (name, {**options, "fields": [f for f in options["fields"] if f != TENANT_FIELD]})
            for name, options in fieldsets
        ]

    def get_readonly_fields(self, request, obj=None):
        readonly = list(super().get_readonly_fields(request, obj))
        if obj is not None and self.tenant_path == TENANT_FIELD and TENANT_FIELD not in readonly:
            readonly.append(TENANT_FIELD)  # a row's tenant never changes after creation
        return readonly

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        if obj is None and is_tenant_admin(request) and self.tenant_path == TENANT_FIELD:
            tenant_id = request.user.tenant_id

            class BoundToTheTenant(form):
                def __init__(self, *args, **kwargs):
                    super().__init__(*args, **kwargs)
                    # Before validation, so the form's and the service's rules see the tenant.
                    self.instance.tenant_id = tenant_id

            BoundToTheTenant.__name__ = form.__name__
            return BoundToTheTenant
        return form

    def form_tenant(self, request, form):
        """The tenant a form's row belongs to: the chosen one (staff) or the admin's own."""
        if is_tenant_admin(request):
            return request.user.tenant
        return form.cleaned_data.get(TENANT_FIELD) or getattr(form.instance, TENANT_FIELD, None)


class ServiceBackedAdmin(TenantScopedAdmin):
    """A ModelAdmin whose rows only services write: the one way the admin saves and deletes.

    Django's add and change views call `save_form()` and go on (history entry, message,
    redirect) with the object it returns. Here `save_form()` hands the validated form to
    `save_through_service()`, which calls the app's service and returns the row the
    service saved, so nothing else writes and no saved row is adopted by hand. Deleting
    (the delete page and the bulk action) goes through `delete_through_service()`.
    A form validates with the same domain validators the service uses, so a rule the
    service enforces is shown on the form, not raised at save time.
    """

    def save_through_service(self, request, form, *, by: Caller, change: bool):
        """Save `form.cleaned_data` through the app's service; return the saved row."""
        raise NotImplementedError(f"{type(self).__name__} saves through a service")

    def delete_through_service(self, request, obj, *, by: Caller) -> None:
        raise NotImplementedError(f"{type(self).__name__} deletes through a service")

    def caller(self, request, form=None) -> Caller:
        """The admin user acting, on the row's tenant (platform staff act on any tenant)."""
        by = caller_of(request)
        if is_tenant_admin(request) or form is None:
            return by
        tenant = self.form_tenant(request, form)
        return by.on_tenant(tenant.pk) if tenant is not None else by

    def save_form(self, request, form, change):
        return self.save_through_service(request, form, by=self.caller(request, form), change=change)

    def save_model(self, request, obj, form, change) -> None:
        """Already saved by `save_form()`."""

    def save_related(self, request, form, formsets, change) -> None:
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    def delete_model(self, request, obj) -> None:
        self.delete_through_service(request, obj, by=caller_of(request).on_tenant(_tenant_id_of(obj, self.tenant_path)))

    def delete_queryset(self, request, queryset) -> None:
        for obj in queryset:
            self.delete_model(request, obj)


class ReadOnlyAdmin(admin.ModelAdmin):
    """A record of what happened: viewable, never added, changed or deleted in the admin."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class TenantScopedReadOnlyAdmin(ReadOnlyAdmin, TenantScopedAdmin):
    tenant_admin_permissions = frozenset({"view"})


class OneTimeRevealAdminMixin:
    """Shows a new secret once, after a redirect (POST, redirect, GET).

    The view that makes the secret calls `reveal_redirect()`; the secret is held
    by `core.reveal` until the page below shows it, and never again: a reload shows
    that it was already shown and creates nothing.
    """

    reveal_purpose = "secret"
    reveal_template = "admin/one_time_secret.html"
    reveal_title = "Your new secret"

    def reveal_url_name(self) -> str:
        return f"{self.opts.app_label}_{self.opts.model_name}_{self.reveal_purpose}_revealed"

    def get_urls(self):
        view = self.admin_site.admin_view(self.reveal_view)
        return [path("<path:object_id>/revealed/", view, name=self.reveal_url_name()), *super().get_urls()]

    def response_add(self, request, obj, post_url_continue=None) -> HttpResponse:
        # A `save_model` that made a secret leaves it on the saved row as `_issued_secret`:
        # POST, redirect, GET, the secret waits encrypted server-side for the one page that shows it.
        secret = obj.__dict__.pop("_issued_secret", None)
        if secret is None:
            return super().response_add(request, obj, post_url_continue)
        return self.reveal_redirect(request, obj, secret)

    def reveal_redirect(self, request, obj, secret: str) -> HttpResponse:
        reveal_hold(request=request, purpose=self.reveal_purpose, object_id=obj.pk, secret=secret)
        return HttpResponseRedirect(reverse(f"admin:{self.reveal_url_name()}", args=[obj.pk]))

    def reveal_view(self, request, object_id) -> HttpResponse:
        obj = self.get_object(request, object_id)
        if obj is None or not self.has_view_permission(request, obj):
            raise Http404
        secret = reveal_take(request=request, purpose=self.reveal_purpose, object_id=obj.pk)
        context = {
            **self.admin_site.each_context(request),
            "title": self.reveal_title if secret else "Already shown",
            "opts": self.opts,
            "original": obj,
            "object": obj,
            "secret": secret,
            "details": self.reveal_details(obj),
        }
        response = TemplateResponse(request, self.reveal_template, context)
        response["Cache-Control"] = "no-store, private"
        response["Pragma"] = "no-cache"
        return response

    def reveal_details(self, obj) -> list[tuple[str, str]]:
        """Label and value rows shown beside the secret."""
        return [("Name", str(obj))]


def form_errors_as_messages(errors) -> list[str]:
    """A serializer's nested errors as sentences ("widgets, item 2, size: ..."), never Python reprs."""
    messages: list[str] = []

    def walk(value, where: list[str]) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                if key == "non_field_errors":
                    walk(inner, where)
                else:  # DRF keys a list's items by their index
                    walk(inner, [*where, f"item {key + 1}" if isinstance(key, int) else str(key)])
        elif isinstance(value, (list, tuple)):
            if all(isinstance(item, (str,)) for item in value):
                for item in value:
                    messages.append(f"{', '.join(where)}: {item}" if where else str(item))
            else:
                for index, item in enumerate(value, start=1):
                    if item:
                        walk(item, [*where, f"item {index}"])
        else:
            messages.append(f"{', '.join(where)}: {value}" if where else str(value))

    walk(errors, [])
    return messages
