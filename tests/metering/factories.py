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

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        """With events in ClickHouse (FLEXMETER_TEST_EVENTS=chdb) no reader looks at the Django table, so the event
        goes to ClickHouse's writer instead (still without validation or usage marks); an unsaved `Event` returns."""
        from metering.clickhouse.config import events_backend

        backend = events_backend()
        if not backend.is_clickhouse:
            return super()._create(model_class, *args, **kwargs)
        from metering.ingest.clickhouse import clickhouse_events_store
        from metering.ingest.validation import EventInput

        event = model_class(*args, **kwargs)
        stored = EventInput(
            event_id=event.event_id,
            event_name=event.event_name,
            external_customer_id=event.external_customer_id,
            timestamp=event.timestamp,
            source=event.source,
            properties=event.properties,
        )
        clickhouse_events_store(backend=backend, environment_id=event.environment_id, events=[stored])
        return event
