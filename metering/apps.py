from django.apps import AppConfig


class MeteringConfig(AppConfig):
    name = "metering"
    verbose_name = "Metering"

    def ready(self):
        from django.conf import settings
        from django.db.backends.signals import connection_created

        from metering.clickhouse.config import refuse_unserved_backend

        refuse_unserved_backend(settings.EVENTS_URL, settings.EVENTS_CLICKHOUSE_CLUSTER)

        from catalog.wizard import property_keys_reader_register
        from metering.selectors import recent_property_keys
        from metering.usage.dialects.sqlite import on_connection_created

        connection_created.connect(on_connection_created, dispatch_uid="metering.usage.dialects.sqlite")
        property_keys_reader_register(recent_property_keys)
