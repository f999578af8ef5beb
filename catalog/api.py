"""REST endpoints for meters and features (SPEC §6.3, §6.4). Thin: parse, call one selector or service, serialize.

Every lookup is scoped to the API key's environment, so another environment's ids answer 404 and never list.
"""

from django.db.models import QuerySet
from django.http import HttpRequest
from ninja import Body, Query, Router, Status

from catalog import schemas, selectors, services
from catalog.models import FeatureStatus, FeatureType, MeterStatus
from catalog.schemas import (
    FeatureCloneIn,
    FeatureFilters,
    FeatureIn,
    FeatureListOut,
    FeatureOut,
    FeatureUpdateIn,
    MeterIn,
    MeterListOut,
    MeterListQuery,
    MeterOut,
    MeterUpdateIn,
)
from flexmeter.envelope import ErrorOut
from flexmeter.errors import ValidationFailed

meters_router = Router(tags=["meters"])
features_router = Router(tags=["features"])


def _errors(*codes: int) -> dict:
    return {code: ErrorOut for code in (401, *codes)}


def _body(body) -> dict:
    """The fields the client actually sent (an absent body counts as `{}`, so the rules name what is missing).

    Body parameters are named `body` so that pydantic errors about the whole body are reported under `body`.
    """
    return body.model_dump(exclude_unset=True) if body is not None else {}


def _choice_filter(value: str | None, *, path: str, choices: list[str]) -> str | None:
    if not value:
        return None
    normalized = value.strip().lower()
    if normalized not in choices:
        raise ValidationFailed(details={path: f"must be one of {', '.join(choices)} (got {value!r})"})
    return normalized


def _ids(values: list[str] | None) -> list[str]:
    """Ids given as repeated parameters and/or comma-separated lists."""
    return [part.strip() for value in values or [] for part in value.split(",") if part.strip()]


def _page(queryset: QuerySet, *, limit: int, offset: int) -> tuple[list, dict]:
    total = queryset.count()
    return list(queryset[offset : offset + limit]), {"total": total, "limit": limit, "offset": offset}


# --- meters -----------------------------------------------------------------------------------------------------


@meters_router.post("", response={201: MeterOut, **_errors(400, 409)}, summary="Create a published meter")
def create_meter(request: HttpRequest, body: Body[MeterIn] = None):
    meter = services.meter_create(environment=request.environment, data=_body(body))
    return Status(201, schemas.meter_to_wire(meter, environment=request.environment))


@meters_router.get("", response={200: MeterListOut, **_errors(400)}, summary="List meters (drafts only on request)")
def list_meters(request: HttpRequest, filters: Query[MeterListQuery]):
    meters = selectors.meter_list(
        environment=request.environment,
        status=_choice_filter(filters.status, path="status", choices=MeterStatus.values),
        event_name=filters.event_name,
        meter_ids=_ids(filters.meter_ids),
    )
    items, pagination = _page(meters, limit=filters.limit, offset=filters.offset)
    return {
        "items": [schemas.meter_to_wire(meter, environment=request.environment) for meter in items],
        "pagination": pagination,
    }


@meters_router.get("/{meter_id}", response={200: MeterOut, **_errors(404)}, summary="Get a meter")
def get_meter(request: HttpRequest, meter_id: str):
    meter = selectors.meter_get(environment=request.environment, meter_id=meter_id)
    return schemas.meter_to_wire(meter, environment=request.environment)


@meters_router.put(
    "/{meter_id}",
    response={200: MeterOut, **_errors(400, 404, 409)},
    summary="Rename a meter or add filters",
    description="Filters merge additively, as in Flexprice: a new key is added, the values sent for an existing key "
    "are added to its values, nothing is removed; an empty values list or a changed operator is a 400. "
    "event_name, aggregation and reset_usage are immutable once published.",
)
def update_meter(request: HttpRequest, meter_id: str, body: Body[MeterUpdateIn] = None):
    meter = selectors.meter_get(environment=request.environment, meter_id=meter_id)
    meter = services.meter_update(meter=meter, data=_body(body))
    return schemas.meter_to_wire(meter, environment=request.environment)


def _archive(request: HttpRequest, meter_id: str) -> dict:
    meter = selectors.meter_get(environment=request.environment, meter_id=meter_id)
    meter = services.meter_archive(meter=meter)
    return schemas.meter_to_wire(meter, environment=request.environment)


@meters_router.post(
    "/{meter_id}/disable", response={200: MeterOut, **_errors(404)}, summary="Archive a meter (history stays)"
)
def disable_meter(request: HttpRequest, meter_id: str):
    return _archive(request, meter_id)


@meters_router.delete("/{meter_id}", response={200: MeterOut, **_errors(404)}, summary="Archive a meter")
def delete_meter(request: HttpRequest, meter_id: str):
    return _archive(request, meter_id)


# --- features ---------------------------------------------------------------------------------------------------


def _expand_meters(expand: str | None) -> bool:
    return "meters" in {part.strip().lower() for part in (expand or "").split(",")}


def _feature_page(request: HttpRequest, filters: FeatureFilters) -> dict:
    lookup_keys = _ids(filters.lookup_keys) + ([filters.lookup_key] if filters.lookup_key else [])
    features = selectors.feature_list(
        environment=request.environment,
        feature_ids=_ids(filters.feature_ids),
        lookup_keys=lookup_keys,
        name_contains=filters.name_contains,
        type=_choice_filter(filters.type, path="type", choices=FeatureType.values),
        status=_choice_filter(filters.status, path="status", choices=FeatureStatus.values),
    )
    items, pagination = _page(features, limit=filters.limit, offset=filters.offset)
    expand = _expand_meters(filters.expand)
    return {
        "items": [
            schemas.feature_to_wire(feature, environment=request.environment, expand_meter=expand) for feature in items
        ],
        "pagination": pagination,
    }


@features_router.post(
    "",
    response={201: FeatureOut, **_errors(400, 409)},
    exclude_unset=True,
    summary="Create a feature (metered: with meter_id or an inline meter)",
)
def create_feature(request: HttpRequest, body: Body[FeatureIn] = None):
    feature = services.feature_create(environment=request.environment, data=_body(body))
    return Status(201, schemas.feature_to_wire(feature, environment=request.environment))


@features_router.get("", response={200: FeatureListOut, **_errors(400)}, exclude_unset=True, summary="List features")
def list_features(request: HttpRequest, filters: Query[FeatureFilters]):
    return _feature_page(request, filters)


@features_router.post(
    "/search",
    response={200: FeatureListOut, **_errors(400)},
    exclude_unset=True,
    summary="Search features (the list filters, in the body)",
)
def search_features(request: HttpRequest, body: Body[FeatureFilters] = None):
    return _feature_page(request, body if body is not None else FeatureFilters())


@features_router.get("/{feature_id}", response={200: FeatureOut, **_errors(404)}, exclude_unset=True)
def get_feature(request: HttpRequest, feature_id: str, expand: str | None = None):
    feature = selectors.feature_get(environment=request.environment, feature_id=feature_id)
    return schemas.feature_to_wire(feature, environment=request.environment, expand_meter=_expand_meters(expand))


@features_router.put(
    "/{feature_id}",
    response={200: FeatureOut, **_errors(400, 404, 409)},
    exclude_unset=True,
    summary="Update a feature",
    description="Omitted fields stay. type, lookup_key and meter_id are immutable; filters are added to the meter.",
)
def update_feature(request: HttpRequest, feature_id: str, body: Body[FeatureUpdateIn] = None):
    feature = selectors.feature_get(environment=request.environment, feature_id=feature_id)
    feature = services.feature_update(feature=feature, data=_body(body))
    return schemas.feature_to_wire(feature, environment=request.environment)


@features_router.delete(
    "/{feature_id}",
    response={200: FeatureOut, **_errors(404)},
    exclude_unset=True,
    summary="Delete a feature (soft) and archive its meter",
)
def delete_feature(request: HttpRequest, feature_id: str):
    feature = selectors.feature_get(environment=request.environment, feature_id=feature_id)
    feature = services.feature_delete(feature=feature)
    return schemas.feature_to_wire(feature, environment=request.environment)


@features_router.post(
    "/{feature_id}/clone",
    response={201: FeatureOut, **_errors(400, 404, 409)},
    exclude_unset=True,
    summary="Clone a feature under a new name and lookup key (a metered clone shares the meter)",
)
def clone_feature(request: HttpRequest, feature_id: str, body: Body[FeatureCloneIn] = None):
    feature = selectors.feature_get(environment=request.environment, feature_id=feature_id)
    clone = services.feature_clone(feature=feature, data=_body(body))
    return Status(201, schemas.feature_to_wire(clone, environment=request.environment))
