from django.contrib.admin.apps import AdminConfig


class HaltlessAdminConfig(AdminConfig):
    """django.contrib.admin with our site: platform staff and tenant admins (core.admin_site)."""

    default_site = "core.admin_site.HaltlessAdminSite"
