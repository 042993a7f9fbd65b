"""Dashboard presets: the widget vocabulary, limits and each role's default layout."""

import re

from users.models import Role

WIDGET_SIZES: tuple[str, ...] = ("full", "half", "third", "quarter")
PRESET_ROLES: tuple[str, ...] = tuple(Role.values)

# Ids are front-end identifiers, not free text: a short slug.
IDENTIFIER_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")
MAX_IDENTIFIER_LENGTH = 64
MAX_LABEL_KEY_LENGTH = 200
MAX_WIDGETS = 50
MAX_STAT_METRICS = 20


def _widget(widget_id: str, label: str, size: str) -> dict:
    return {"id": widget_id, "labelKey": f"dashboard.widgets.{label}", "visible": True, "size": size}


def _metrics(*metric_ids: str) -> list[dict]:
    return [{"metricId": metric_id} for metric_id in metric_ids]


# The shop floor's layout: the operator's preset, and the admin's before its own additions.
_FLOOR_WIDGETS: tuple[tuple[str, str, str], ...] = (
    ("stat-cards", "statCards", "full"),
    ("at-risk-machines", "atRiskMachines", "half"),
    ("active-alerts", "activeAlerts", "half"),
    ("sensor-trends", "sensorTrends", "full"),
    ("maintenance-schedule", "maintenanceSchedule", "half"),
    ("work-orders", "workOrders", "half"),
)
_FLOOR_METRICS: tuple[str, ...] = ("critical_count", "active_alerts", "machines_online")

# What a role sees before an admin saves its preset.
DEFAULT_PRESETS: dict[str, dict[str, list[dict]]] = {
    "admin": {
        "widgets": [*(_widget(*w) for w in _FLOOR_WIDGETS), _widget("recent-activity", "recentActivity", "full")],
        "statMetrics": _metrics(*_FLOOR_METRICS, "open_work_orders"),
    },
    "operator": {
        "widgets": [_widget(*w) for w in _FLOOR_WIDGETS],
        "statMetrics": _metrics(*_FLOOR_METRICS),
    },
    "viewer": {
        "widgets": [
            _widget("stat-cards", "statCards", "full"),
            _widget("machine-status", "machineStatus", "full"),
            _widget("active-alerts", "activeAlerts", "half"),
            _widget("sensor-trends", "sensorTrends", "half"),
        ],
        "statMetrics": _metrics("critical_count", "active_alerts"),
    },
}


def default_preset(role: str) -> dict[str, list[dict]]:
    preset = DEFAULT_PRESETS[role]
    return {"widgets": [dict(w) for w in preset["widgets"]], "statMetrics": [dict(m) for m in preset["statMetrics"]]}
