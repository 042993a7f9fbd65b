from django.apps import AppConfig
from django.core import checks


class ApiKeysConfig(AppConfig):
    name = "apikeys"
    verbose_name = "API keys"

    def ready(self) -> None:
        from apikeys.checks import check_required_scopes

        checks.register(check_required_scopes, checks.Tags.urls, checks.Tags.security)
