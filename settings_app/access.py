"""What each role may see: the one definition of settings tabs and nav pages.

Role permissions are navigation settings for the front end (which settings
tabs and nav pages a role is shown). The API's own authorisation is by role
(see core.permissions): these lists hide nothing that the API would refuse.
"""

from collections.abc import Iterable

from users.models import Role

SETTINGS_TABS: tuple[str, ...] = (
    "tenant",
    "notifications",
    "units",
    "api-keys",
    "users",
    "roles",
    "ai",
    "dashboard",
    "retention",
)
NAV_PAGES: tuple[str, ...] = ("dashboard", "machines", "alerts", "maintenance", "work-orders", "reports", "settings")

# Admins always see everything, so only these roles are configurable.
CONFIGURABLE_ROLES: tuple[str, ...] = (Role.OPERATOR.value, Role.VIEWER.value)

# Before any PUT: the documentation's example.
DEFAULT_ROLE_PERMISSIONS: dict[str, dict[str, list[str]]] = {
    "operator": {
        "settings": ["tenant", "notifications", "units"],
        "nav": ["dashboard", "machines", "alerts", "maintenance", "work-orders"],
    },
    "viewer": {
        "settings": ["tenant", "units"],
        "nav": ["dashboard", "machines", "alerts"],
    },
}

ADMIN_NOT_CONFIGURABLE = "Admins always see everything; their access cannot be restricted."


def full_access() -> dict[str, list[str]]:
    return {"settings": list(SETTINGS_TABS), "nav": list(NAV_PAGES)}


def default_access(role: str) -> dict[str, list[str]]:
    defaults = DEFAULT_ROLE_PERMISSIONS[role]
    return {"settings": list(defaults["settings"]), "nav": list(defaults["nav"])}


def canonical(names: Iterable[str], known: tuple[str, ...]) -> list[str]:
    """Known names, de-duplicated, in their catalogue order (so equal sets compare equal)."""
    chosen = set(names)
    return [name for name in known if name in chosen]


def unknown_names(names: Iterable[str], known: tuple[str, ...]) -> list[str]:
    return [str(name) for name in names if name not in known]
