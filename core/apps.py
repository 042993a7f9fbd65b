import logging

from django.apps import AppConfig
from django.conf import settings


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "API conventions"

    def ready(self):
        if settings.LOG_FORMAT == "json":
            # Python's warnings go to stderr as bare text; as log records they become JSON lines too.
            logging.captureWarnings(True)
