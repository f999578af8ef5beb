from django.apps import AppConfig


class MeteringConfig(AppConfig):
    name = "metering"
    verbose_name = "Metering"

    def ready(self):
        from django.conf import settings
        from django.db.backends.signals import connection_created

        from metering.clickhouse.config import parse_events_url

        parse_events_url(settings.EVENTS_URL, cluster=settings.EVENTS_CLICKHOUSE_CLUSTER)  # malformed: refuse to start

        from catalog.selectors import feature_activity_reader_register
        from catalog.wizard import property_keys_reader_register
        from metering.selectors import recent_property_keys
        from metering.usage.dashboard import feature_activity_read
        from metering.usage.dialects.sqlite import on_connection_created

        connection_created.connect(on_connection_created, dispatch_uid="metering.usage.dialects.sqlite")
        property_keys_reader_register(recent_property_keys)
        feature_activity_reader_register(feature_activity_read)
