import factory

from catalog.models import Feature, FeatureStatus, FeatureType, Meter, MeterStatus
from tests.factories import EnvironmentFactory


class MeterFactory(factory.django.DjangoModelFactory):
    """A published COUNT meter. Rows are written directly (no rules) — use services to test the rules."""

    class Meta:
        model = Meter

    environment = factory.SubFactory(EnvironmentFactory)
    name = factory.Sequence(lambda n: f"Meter {n}")
    event_name = factory.Sequence(lambda n: f"event.{n}")
    aggregation_type = "COUNT"
    status = MeterStatus.PUBLISHED
    fingerprint = factory.Sequence(lambda n: f"fp{n}")


class FeatureFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Feature

    environment = factory.SubFactory(EnvironmentFactory)
    name = factory.Sequence(lambda n: f"Feature {n}")
    lookup_key = factory.Sequence(lambda n: f"feature_{n}")
    type = FeatureType.METERED
    meter = factory.SubFactory(MeterFactory, environment=factory.SelfAttribute("..environment"))
    status = FeatureStatus.PUBLISHED
