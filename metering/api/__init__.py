"""The REST API of metering (SPEC §6): django-ninja routers and schemas for customers (`customers`), events
(`events`) and usage (`usage`), mounted under /v1 by flexmeter/api.py, plus the lean `POST /v1/events` view
(`ingest_view`) that flexmeter/urls.py routes ahead of ninja, and the exact-JSON body reading both share (`http`)."""
