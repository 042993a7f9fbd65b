import datetime

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from apikeys.services import api_key_create
from core.caller import Caller
from core.management import one_line_error
from tenants.models import Tenant
from tenants.selectors import tenant_get_by_id_or_name


def _parse_expiry(value: str) -> datetime.datetime:
    """ISO 8601 datetime or date; without a time zone it is UTC (a date: its midnight)."""
    try:
        parsed = parse_datetime(value)
        if parsed is None and (day := parse_date(value)) is not None:
            parsed = datetime.datetime.combine(day, datetime.time())
    except ValueError:
        parsed = None
    if parsed is None:
        raise CommandError(f"--expires-at: {value!r} is not an ISO 8601 datetime, e.g. 2027-04-04T00:00:00Z.")
    return timezone.make_aware(parsed, datetime.UTC) if timezone.is_naive(parsed) else parsed


class Command(BaseCommand):
    help = (
        "Issue an API key for a tenant and print it, once: only its digest is stored. "
        "Details go to stderr, so stdout is the key alone."
    )

    def add_arguments(self, parser):
        parser.add_argument("--tenant", required=True, help="tenant id or name")
        parser.add_argument("--name", required=True, help="what the key is for, e.g. edge-agent-line-3")
        parser.add_argument(
            "--scopes",
            nargs="+",
            metavar="S",
            help="scope or preset names (default: ingest agent); presets: edge_agent, read_only",
        )
        parser.add_argument("--expires-at", help="ISO 8601 expiry, e.g. 2027-04-04T00:00:00Z (default: never)")

    def handle(self, *args, tenant: str, name: str, scopes: list[str] | None, expires_at: str | None, **options):
        expiry = _parse_expiry(expires_at) if expires_at else None
        try:
            tenant_obj = tenant_get_by_id_or_name(tenant)
            issued = api_key_create(
                by=Caller.system(tenant_id=tenant_obj.id), name=name, scopes_requested=scopes, expires_at=expiry
            )
        except Tenant.DoesNotExist as exc:
            raise CommandError(str(exc)) from None
        except ValidationError as exc:
            raise CommandError(one_line_error(exc)) from None
        api_key = issued.api_key
        expires = api_key.expires_at.isoformat() if api_key.expires_at else "never"
        self.stderr.write(
            f"Issued API key {api_key.prefix}… ({api_key.id}) for {tenant_obj.name} with scopes "
            f"{', '.join(api_key.scopes)}; expires {expires}. Store it now: it cannot be shown again."
        )
        self.stdout.write(issued.secret)
