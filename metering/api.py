"""REST endpoints for customers and events (SPEC §6.2, §6.5)."""

from ninja import Router

customers_router = Router(tags=["customers"])
events_router = Router(tags=["events"])
