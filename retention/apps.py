from django.apps import AppConfig


class RetentionConfig(AppConfig):
    name = "retention"
    verbose_name = "Data retention"

    def ready(self) -> None:
        # Legal holds keep readings: telemetry asks before deleting a machine or a sensor.
        from retention.selectors import readings_held_reason
        from telemetry import services as telemetry_services

        if readings_held_reason not in telemetry_services.deletion_guards:
            telemetry_services.deletion_guards.append(readings_held_reason)
