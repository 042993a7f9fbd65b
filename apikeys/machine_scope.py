"""Machine-scoped keys: how `machines` (external ids) become stored machine ids and back.

apikeys sits below telemetry (telemetry imports apikeys, never the reverse), so
the machines are looked up through a directory that telemetry registers when
it is ready (telemetry.apps), not by importing telemetry here.
"""

import uuid
from collections.abc import Iterable
from typing import Protocol

NOT_A_LIST = "Expected null (every machine) or a list of machine external ids."
EMPTY = "Give at least one machine, or null for every machine of the tenant."
UNKNOWN = "Unknown machine: {names}."


class MachineDirectory(Protocol):
    def ids_by_external_id(self, *, tenant_id: uuid.UUID, external_ids: Iterable[str]) -> dict[str, uuid.UUID]: ...

    def external_ids_by_id(self, *, ids: Iterable[uuid.UUID | str]) -> dict[str, str]: ...


_directory: MachineDirectory | None = None


def register_directory(directory: MachineDirectory) -> None:
    global _directory
    _directory = directory


def _get_directory() -> MachineDirectory:
    if _directory is None:  # pragma: no cover - telemetry is always installed
        raise RuntimeError("No machine directory registered (is telemetry in INSTALLED_APPS?).")
    return _directory


def resolve_machines(*, tenant_id: uuid.UUID, value: object) -> list[str] | None:
    """Stored machine ids (strings) for `machines`: None stays None (every machine).

    Raises ValueError with the messages for a non-list, an empty list, or
    external ids that are not machines of this tenant (another tenant's are
    unknown here, exactly as missing ones).
    """
    if value is None:
        return None
    if not isinstance(value, list | tuple) or not all(isinstance(item, str) for item in value):
        raise ValueError([NOT_A_LIST])
    names = list(dict.fromkeys(item.strip() for item in value))
    if not names:
        raise ValueError([EMPTY])
    found = _get_directory().ids_by_external_id(tenant_id=tenant_id, external_ids=names)
    missing = [name for name in names if name not in found]
    if missing:
        raise ValueError([UNKNOWN.format(names=", ".join(repr(name) for name in missing))])
    return [str(found[name]) for name in names]


def external_ids(machine_ids_per_key: Iterable[list[str] | None]) -> dict[str, str]:
    """machine id -> external id for every id in the given scopes: one query, none if no key is scoped."""
    ids = {machine_id for scope in machine_ids_per_key if scope for machine_id in scope}
    if not ids:
        return {}
    return _get_directory().external_ids_by_id(ids=ids)


def scope_as_external_ids(machine_ids: list[str] | None, names: dict[str, str]) -> list[str] | None:
    """A key's `machines` as the API shows it; a machine deleted since is left out."""
    if machine_ids is None:
        return None
    return [names[machine_id] for machine_id in machine_ids if machine_id in names]
