import factory

from apikeys import keys
from apikeys.models import ApiKey
from tenants.tests.factories import TenantFactory


class ApiKeyFactory(factory.django.DjangoModelFactory):
    """A key straight in the database, for states the service refuses (already expired, revoked).

    The plaintext is on the instance as `.secret`, for tests only.
    """

    class Meta:
        model = ApiKey

    tenant = factory.SubFactory(TenantFactory)
    name = factory.Sequence(lambda n: f"key {n}")
    scopes = factory.LazyFunction(lambda: ["ingest", "agent"])

    @classmethod
    def _create(cls, model_class, *args, secret: str | None = None, **kwargs):
        secret = secret or keys.generate_key()
        kwargs.setdefault("prefix", keys.display_prefix(secret))
        kwargs.setdefault("key_digest", keys.digest(secret))
        api_key = super()._create(model_class, *args, **kwargs)
        api_key.secret = secret
        return api_key
