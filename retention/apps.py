from django.apps import AppConfig


class RetentionConfig(AppConfig):
    name = "retention"
    verbose_name = "Data retention"

    def ready(self) -> None:
        # Legal holds keep readings: telemetry asks before deleting a machine or a sensor.
        from retention.selectors import raw_readings_cutoff, readings_held_reason
        from telemetry import selectors as telemetry_selectors
        from telemetry import services as telemetry_services

        if readings_held_reason not in telemetry_services.deletion_guards:
            telemetry_services.deletion_guards.append(readings_held_reason)
        # The aggregates answer from rollups where retention may have deleted raw readings.
        if raw_readings_cutoff not in telemetry_selectors.raw_cutoff_providers:
            telemetry_selectors.raw_cutoff_providers.append(raw_readings_cutoff)
