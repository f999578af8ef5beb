"""The customer portal page: what a link from `GET /v1/customers/portal/{external_id}` opens, without a login.

The signed token in the URL is the only credential; it names one customer of one environment, and the page shows
that customer's current billing period, plans and limits, and nothing else. It lives in the shell because it
composes metering (usage) and entitlements (plans), which metering may not import. The page may be framed by
PORTAL_FRAME_ANCESTORS only.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.csp import build_policy
from django.views.decorators.http import require_GET

from entitlements.selectors import customer_entitlements
from metering.portal import PortalTokenRefused, portal_customer
from metering.usage.dashboard import CHART_SIZES, portal_usage
from metering.views.charts import bar_chart

REFUSALS = {
    "expired": ("This link has expired", "Portal links are valid for a limited time. Ask for a new one."),
    "revoked": ("This link is no longer valid", "It was revoked, or the account it belongs to was closed."),
    "invalid": ("This link is not valid", "It may be incomplete or altered. Copy the whole link and try again."),
}


@require_GET
def portal_page(request: HttpRequest, token: str) -> HttpResponse:
    try:
        customer = portal_customer(token=token)
    except PortalTokenRefused as refused:
        title, message = REFUSALS[refused.reason]
        context = {"title": title, "message": message, "reason": refused.reason}
        return _portal_headers(render(request, "metering/portal/refused.html", context, status=403))
    usage = portal_usage(customer=customer)
    features = [
        {
            "row": item.usage,
            "feature": item.usage.feature,
            "chart": bar_chart(
                item.series,
                size=usage.chart_size,
                unit_singular=item.usage.feature.unit_singular,
                unit_plural=item.usage.feature.unit_plural,
            ),
            "has_usage": any(window.value is not None for window in item.series),
        }
        for item in usage.features
    ]
    entitlements = customer_entitlements(customer=customer)
    context = {
        "customer": customer,
        "usage": usage,
        "features": features,
        "size_label": CHART_SIZES[usage.chart_size].lower(),
        "plans": sorted({subscription.plan.name for subscription in entitlements.subscriptions}),
        "entitlements": entitlements.features,
    }
    return _portal_headers(render(request, "metering/portal/page.html", context))


def _portal_headers(response: HttpResponse) -> HttpResponse:
    """No caching, no token in Referer headers, and framing by the configured origins only (none by default)."""
    response["Cache-Control"] = "no-store"
    response["Referrer-Policy"] = "no-referrer"
    response["X-Robots-Tag"] = "noindex"
    origins = settings.PORTAL_FRAME_ANCESTORS
    if origins:
        # the site's policy, with only frame-ancestors opened to the embedding origins
        policy = {**(getattr(settings, "SECURE_CSP", None) or {}), "frame-ancestors": list(origins)}
        response["Content-Security-Policy"] = build_policy(policy)
        response.xframe_options_exempt = True
    return response
