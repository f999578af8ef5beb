"""Customer portal sessions over the API: Flexprice's `GET /v1/customers/portal/{external_id}`, and revocation."""

from django.http import HttpRequest
from django.urls import reverse
from ninja import Router, Schema, Status

from metering.api.schemas import Timestamp, timestamp_out
from metering.portal import portal_session_create, portal_sessions_revoke
from metering.selectors import customer_get_by_external_id

portal_router = Router(tags=["customers"])


class PortalSessionOut(Schema):
    url: str
    token: str
    expires_at: Timestamp


@portal_router.get(
    "/portal/{external_id}",
    response=PortalSessionOut,
    summary="A link to the customer's read-only usage portal, valid for PORTAL_SESSION_SECONDS (default 1 hour)",
)
def create_portal_session(request: HttpRequest, external_id: str):
    customer = customer_get_by_external_id(environment=request.environment, external_id=external_id)
    session = portal_session_create(customer=customer)
    url = request.build_absolute_uri(reverse("flexmeter:portal", args=[session.token]))
    return {"url": url, "token": session.token, "expires_at": timestamp_out(session.expires_at)}


@portal_router.post(
    "/portal/{external_id}/revoke",
    response={204: None},
    summary="Revoke every portal link issued so far for this customer (new ones may be issued right after)",
)
def revoke_portal_sessions(request: HttpRequest, external_id: str):
    customer = customer_get_by_external_id(environment=request.environment, external_id=external_id)
    portal_sessions_revoke(customer=customer)
    return Status(204, None)
