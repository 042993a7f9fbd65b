"""System check: every scope an endpoint declares exists in the registry.

A typo such as `required_scope = "read:machine"` would otherwise lock every
key out of that endpoint at run time; this turns it into a start-up error.
"""

from collections.abc import Iterator

from django.core.checks import Error
from django.urls import URLPattern, URLResolver, get_resolver

from apikeys import scopes
from core.permissions import ANY_SCOPE


def _patterns(resolver: URLResolver, prefix: str = "") -> Iterator[tuple[str, URLPattern]]:
    for pattern in resolver.url_patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            yield from _patterns(pattern, route)
        else:
            yield route, pattern


def _view_class(callback):
    # DRF's as_view() sets `cls` (viewsets and @api_view too); Django's sets `view_class`.
    return getattr(callback, "cls", None) or getattr(callback, "view_class", None)


def check_required_scopes(app_configs=None, **kwargs) -> list[Error]:
    errors: list[Error] = []
    for route, pattern in _patterns(get_resolver()):
        view_class = _view_class(pattern.callback)
        if view_class is None:
            continue
        initkwargs = getattr(pattern.callback, "initkwargs", None) or {}
        scope = initkwargs.get("required_scope", getattr(view_class, "required_scope", None))
        write_scope = initkwargs.get("required_write_scope", getattr(view_class, "required_write_scope", None))
        if write_scope is not None and not scopes.is_scope(write_scope):
            errors.append(
                Error(
                    f"{view_class.__module__}.{view_class.__qualname__} (/{route}) declares required_write_scope "
                    f"{write_scope!r}, which is not a registered scope.",
                    hint=f"Use one of: {', '.join(scopes.SCOPES)}, or add it to apikeys.scopes.SCOPES.",
                    obj=view_class,
                    id="apikeys.E001",
                )
            )
        allow_user_login = initkwargs.get("allow_user_login", getattr(view_class, "allow_user_login", True))
        label = f"{view_class.__module__}.{view_class.__qualname__} (/{route})"
        if scope is not None and scope != ANY_SCOPE and not scopes.is_scope(scope):
            errors.append(
                Error(
                    f"{label} declares required_scope {scope!r}, which is not a registered scope.",
                    hint=f"Use one of: {', '.join(scopes.SCOPES)}, or add it to apikeys.scopes.SCOPES.",
                    obj=view_class,
                    id="apikeys.E001",
                )
            )
        elif scope is None and not allow_user_login:
            errors.append(
                Error(
                    f"{label} refuses user logins (allow_user_login = False) but declares no "
                    "required_scope, so no credential can ever reach it.",
                    hint="Declare the scope an API key needs for it.",
                    obj=view_class,
                    id="apikeys.E002",
                )
            )
    return errors
