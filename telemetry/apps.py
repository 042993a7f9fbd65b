from django.apps import AppConfig


class TelemetryConfig(AppConfig):
    name = "telemetry"

    def ready(self) -> None:
        from apikeys.machine_scope import register_directory
        from telemetry.selectors import MachineDirectory

        register_directory(MachineDirectory())
