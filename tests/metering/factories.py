import datetime as dt

import factory
from django.utils import timezone

from metering.models import Customer, Event
from tests.factories import EnvironmentFactory


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Customer

    environment = factory.SubFactory(EnvironmentFactory)
    external_id = factory.Sequence(lambda n: f"customer-{n}")
    name = factory.Sequence(lambda n: f"Customer {n}")
    billing_anchor = factory.LazyFunction(
        lambda: timezone.now().replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    )


class EventFactory(factory.django.DjangoModelFactory):
    """A stored event written directly to the table (bypasses ingestion validation)."""

    class Meta:
        model = Event

    environment = factory.SubFactory(EnvironmentFactory)
    event_id = factory.Sequence(lambda n: f"evt-{n}")
    event_name = "api.calls"
    external_customer_id = "customer-0"
    timestamp = factory.LazyFunction(lambda: timezone.now() - dt.timedelta(minutes=1))
    properties = factory.LazyFunction(dict)
