from django.apps import AppConfig


class RetentionConfig(AppConfig):
    name = "retention"
    verbose_name = "Data retention"

    def ready(self) -> None:
        # Legal holds keep readings: telemetry asks before deleting a machine or a sensor.
        from retention.selectors import raw_readings_cutoff, reading_held_reason
        from telemetry import selectors as telemetry_selectors
        from telemetry import services as telemetry_services

        if reading_held_reason not in telemetry_services.deletion_guards:
            telemetry_services.deletion_guards.append(reading_held_reason)
        # The aggregates answer from rollups where retention may have deleted raw readings.
        if raw_readings_cutoff not in telemetry_selectors.raw_cutoff_providers:
            telemetry_selectors.raw_cutoff_providers.append(raw_readings_cutoff)

        # A tier change lowers the tenant's explicit windows to the new tier's caps (audited).
        from tenants import services as tenant_services

        if _clamp_policy not in tenant_services.tier_change_hooks:
            tenant_services.tier_change_hooks.append(_clamp_policy)


def _clamp_policy(*, tenant, by) -> None:
    from retention.services import retention_policy_clamp

    retention_policy_clamp(by=by, tenant=tenant)
