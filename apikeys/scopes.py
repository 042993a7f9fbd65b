"""The one registry of API-key scopes and presets.

Endpoints declare the scope they need (`required_scope = "read:machines"`);
this module says which scopes exist and how presets expand. The system check
in apikeys.checks refuses an endpoint that names a scope missing here.
"""

from collections.abc import Iterable

SCOPES: dict[str, str] = {
    "ingest": "POST /ingest: push sensor data batches",
    "agent": "GET /agent/heartbeat: edge agent heartbeat",
    "read:machines": "GET /machines: list and read machine details",
    "read:sensors": "GET /sensor-data/*: query sensor readings",
    "write:machines": "POST/PATCH/DELETE /machines: provision machines and sensors (e.g. from an MES or ERP)",
}

PRESETS: dict[str, list[str]] = {
    "edge_agent": ["ingest", "agent"],
    "read_only": ["read:machines", "read:sensors"],
}

DEFAULT_SCOPES: list[str] = ["ingest", "agent"]


class UnknownScope(ValueError):
    pass


def is_scope(name: object) -> bool:
    return isinstance(name, str) and name in SCOPES


def scope_choices() -> list[tuple[str, str]]:
    """(name, label) pairs for forms, in registry order."""
    return [(name, f"{name}: {description}") for name, description in SCOPES.items()]


def expand_scopes(value: str | Iterable[str]) -> list[str]:
    """Expand a preset name, or a list of scope and preset names, to scope names.

    The result keeps first-seen order and has no duplicates. Raises
    UnknownScope naming every name that is neither a scope nor a preset.
    """
    names = [value] if isinstance(value, str) else list(value)
    expanded: list[str] = []
    unknown: list[str] = []
    for name in names:
        if not isinstance(name, str):
            unknown.append(repr(name))
        elif name in PRESETS:
            expanded.extend(PRESETS[name])
        elif name in SCOPES:
            expanded.append(name)
        else:
            unknown.append(repr(name))
    if unknown:
        raise UnknownScope(
            f"Unknown scope or preset: {', '.join(unknown)}. "
            f"Scopes: {', '.join(SCOPES)}; presets: {', '.join(PRESETS)}."
        )
    return list(dict.fromkeys(expanded))
