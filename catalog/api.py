"""REST endpoints for meters and features (SPEC §6.3, §6.4)."""

from ninja import Router

meters_router = Router(tags=["meters"])
features_router = Router(tags=["features"])
