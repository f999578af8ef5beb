"""Customer portal sessions: a signed token that lets one customer of one environment read its own usage.

The token is Django's signing of `{environment, customer, epoch, expiry}` under the site's SECRET_KEY, so it needs
no table and cannot be altered without the signature failing. It carries its own expiry (so changing the
lifetime setting never stretches tokens already issued) and the customer's `portal_epoch` at issue time:
`portal_sessions_revoke` raises the epoch and every earlier token stops working at once. Deleting the customer
refuses its tokens too, since only an active customer with that public id is accepted.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.conf import settings
from django.core import signing
from django.db.models import F
from django.utils import timezone

from metering.models import Customer, CustomerStatus

SALT = "flexmeter.portal.session"
DEFAULT_LIFETIME_SECONDS = 3600


@dataclass(frozen=True)
class PortalSession:
    customer: Customer
    token: str
    expires_at: dt.datetime


class PortalTokenRefused(Exception):
    """Why a token opens nothing: `reason` is `invalid` (malformed or altered), `expired` or `revoked`."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


def portal_lifetime() -> dt.timedelta:
    return dt.timedelta(seconds=getattr(settings, "PORTAL_SESSION_SECONDS", DEFAULT_LIFETIME_SECONDS))


def portal_session_create(*, customer: Customer, now: dt.datetime | None = None) -> PortalSession:
    """A token for `customer`'s portal, valid from now for the configured lifetime (PORTAL_SESSION_SECONDS)."""
    expires_at = (now or timezone.now()) + portal_lifetime()
    payload = {
        "e": customer.environment_id,
        "c": customer.public_id,
        "v": customer.portal_epoch,
        "x": int(expires_at.timestamp()),
    }
    token = signing.dumps(payload, salt=SALT, compress=True)
    return PortalSession(customer=customer, token=token, expires_at=expires_at.replace(microsecond=0))


def portal_customer(*, token: str, now: dt.datetime | None = None) -> Customer:
    """The customer a token was issued for, or PortalTokenRefused. The expiry is checked before anything is read."""
    try:
        payload = signing.loads(token, salt=SALT)
        environment_id, public_id, epoch, expiry = payload["e"], payload["c"], payload["v"], payload["x"]
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        raise PortalTokenRefused("invalid") from None
    if (now or timezone.now()).timestamp() >= expiry:
        raise PortalTokenRefused("expired")
    customer = (
        Customer.objects.select_related("environment")
        .filter(environment_id=environment_id, public_id=public_id, status=CustomerStatus.ACTIVE)
        .first()
    )
    if customer is None or customer.portal_epoch != epoch:
        raise PortalTokenRefused("revoked")
    return customer


def portal_sessions_revoke(*, customer: Customer) -> Customer:
    """Invalidate every portal token issued so far for `customer` (new ones can be issued right after)."""
    Customer.objects.filter(pk=customer.pk).update(portal_epoch=F("portal_epoch") + 1)
    customer.refresh_from_db(fields=["portal_epoch"])
    return customer
