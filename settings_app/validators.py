"""The rules of tenant settings, in one place: the services, the API's serializers and the admin call them.

Each rule raises (or its message is) what the API answers, so the API, the admin
and a direct call of a service refuse the same input with the same words. The
serializers keep only a JSON body's shape (types, required fields); what a valid
role, tab, unit or preset is lives here.
"""

from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator

from settings_app import access, dashboard
from settings_app.units import UNIT_CHOICES

# --- Role permissions -----------------------------------------------------------------

# DRF's ChoiceField fills in `{input}`; `unknown_entry_message()` does it for the service.
UNKNOWN_ENTRY = {"settings": 'Unknown settings tab "{input}".', "nav": 'Unknown nav page "{input}".'}
_CATALOGUE = {"settings": access.SETTINGS_TABS, "nav": access.NAV_PAGES}


def role_error(role: str) -> str | None:
    """Why `role`'s access cannot be configured, or None when it can."""
    if role == "admin":
        return access.ADMIN_NOT_CONFIGURABLE
    if role not in access.CONFIGURABLE_ROLES:
        return f"Unknown role {role!r}; configurable roles: {', '.join(access.CONFIGURABLE_ROLES)}."
    return None


def unknown_entry_message(key: str, name: Any) -> str:
    return UNKNOWN_ENTRY[key].format(input=name)


def role_permissions_validate(permissions: dict[str, dict[str, list[str]]]) -> None:
    """Refuse unknown or unconfigurable roles and unknown tabs and nav pages, per role."""
    errors: dict[str, Any] = {}
    for role, lists in permissions.items():
        if message := role_error(role):
            errors[role] = [message]
            continue
        unknown = [
            unknown_entry_message(key, name)
            for key, known in _CATALOGUE.items()
            for name in access.unknown_names(lists.get(key, []), known)
        ]
        if unknown:
            errors[role] = unknown
    if errors:
        raise ValidationError(errors)


# --- Units -------------------------------------------------------------------------------


def unknown_unit_message(kind: str, unit: Any = "{input}") -> str:
    """The refusal of `unit` for `kind`; without a unit, the template DRF's ChoiceField fills in."""
    return f'Unknown {kind} unit "{unit}"; choose one of: {", ".join(UNIT_CHOICES[kind])}.'


def unit_preferences_validate(changes: dict[str, str]) -> None:
    errors = {}
    for kind, unit in changes.items():
        if kind not in UNIT_CHOICES:
            errors[kind] = ["Unknown field."]
        elif unit not in UNIT_CHOICES[kind]:
            errors[kind] = [unknown_unit_message(kind, unit)]
    if errors:
        raise ValidationError(errors)


# --- Dashboard presets ----------------------------------------------------------------------

IDENTIFIER_MESSAGE = "Use letters, digits and - _ . : only, starting with a letter or digit."
validate_identifier = RegexValidator(dashboard.IDENTIFIER_PATTERN, IDENTIFIER_MESSAGE)

# The API's (DRF's) words for a value of the wrong shape, for callers without a serializer.
_BLANK = "This field may not be blank."
_REQUIRED = "This field is required."
_NOT_A_STRING = "Must be a string."
_NOT_A_BOOLEAN = "Must be true or false."
_TOO_LONG = "Ensure this field has no more than {max_length} characters."
_TOO_MANY = "Ensure this field has no more than {max_length} elements."
_NOT_A_CHOICE = '"{input}" is not a valid choice.'


def validate_unique(items: list[dict], *, key: str, label: str) -> None:
    """Each item's `key` at most once: widget ids, metric ids."""
    seen, repeated = set(), []
    for item in items:
        if item[key] in seen and item[key] not in repeated:
            repeated.append(item[key])
        seen.add(item[key])
    if repeated:
        raise ValidationError(f"Each {label} may appear once; repeated: {', '.join(repeated)}.")


def validate_widget_ids_unique(widgets: list[dict]) -> None:
    validate_unique(widgets, key="id", label="widget id")


def validate_metric_ids_unique(metrics: list[dict]) -> None:
    validate_unique(metrics, key="metricId", label="metricId")


def _string_errors(value: Any, *, max_length: int, identifier: bool = False) -> list[str]:
    if not isinstance(value, str):
        return [_NOT_A_STRING]
    value = value.strip()  # as the API's fields trim
    if not value:
        return [_BLANK]
    if len(value) > max_length:
        return [_TOO_LONG.format(max_length=max_length)]
    if identifier:
        try:
            validate_identifier(value)
        except ValidationError as exc:
            return exc.messages
    return []


def _item_errors(item: Any, fields: dict[str, Any]) -> dict[str, list[str]]:
    if not isinstance(item, dict):
        return {"non_field_errors": ["Invalid data."]}
    errors = {name: ["Unknown field."] for name in item if name not in fields}
    for name, check in fields.items():
        if name not in item:
            errors[name] = [_REQUIRED]
        elif messages := check(item[name]):
            errors[name] = messages
    return errors


_WIDGET_FIELDS = {
    "id": lambda value: _string_errors(value, max_length=dashboard.MAX_IDENTIFIER_LENGTH, identifier=True),
    "labelKey": lambda value: _string_errors(value, max_length=dashboard.MAX_LABEL_KEY_LENGTH),
    "visible": lambda value: [] if isinstance(value, bool) else [_NOT_A_BOOLEAN],
    "size": lambda value: [] if value in dashboard.WIDGET_SIZES else [_NOT_A_CHOICE.format(input=value)],
}
_METRIC_FIELDS = {
    "metricId": lambda value: _string_errors(value, max_length=dashboard.MAX_IDENTIFIER_LENGTH, identifier=True),
}


def dashboard_preset_validate(*, role: str, widgets: list[dict], stat_metrics: list[dict]) -> None:
    """The whole preset, for callers without the API's serializer (the admin's form, the service).

    Raises a ValidationError of sentences in the API's words, each saying where
    ("widgets, item 2, size: ..."), never a serializer's nested error structure.
    """
    sentences: list[str] = []
    if role not in dashboard.PRESET_ROLES:
        sentences.append(f"role: {_NOT_A_CHOICE.format(input=role)}")
    for name, items, fields, limit, unique in (
        ("widgets", widgets, _WIDGET_FIELDS, dashboard.MAX_WIDGETS, validate_widget_ids_unique),
        ("statMetrics", stat_metrics, _METRIC_FIELDS, dashboard.MAX_STAT_METRICS, validate_metric_ids_unique),
    ):
        if len(items) > limit:
            sentences.append(f"{name}: {_TOO_MANY.format(max_length=limit)}")
            continue
        item_errors = [_item_errors(item, fields) for item in items]
        for index, errors in enumerate(item_errors, start=1):
            for field, messages in errors.items():
                where = f"{name}, item {index}" if field == "non_field_errors" else f"{name}, item {index}, {field}"
                sentences.extend(f"{where}: {message}" for message in messages)
        if not any(item_errors):
            try:
                unique(items)
            except ValidationError as exc:
                sentences.extend(f"{name}: {message}" for message in exc.messages)
    if sentences:
        raise ValidationError(sentences)
