"""The dashboard's home: what happened today and this week, what nothing counted, which features and customers
lead. Every number comes from `metering.usage.dashboard.overview_read` (indexes and rollups, never a table scan)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from catalog.selectors import metered_features
from flexmeter.dashboard import dashboard_view
from metering.usage.dashboard import DEFAULT_WINDOW, OVERVIEW_DAYS, WINDOWS, overview_read
from metering.views.charts import sparkline


@require_GET
@dashboard_view
def overview(request: HttpRequest) -> HttpResponse:
    features = list(metered_features(environment=request.environment))
    data = overview_read(environment=request.environment, features=features)
    context = {
        "overview": data,
        "has_catalog": bool(features),
        "window": DEFAULT_WINDOW,
        "window_label": WINDOWS[DEFAULT_WINDOW],
        "days": OVERVIEW_DAYS,
        "events_spark": sparkline(
            [day.events for day in data.days], label=f"Events per day over the last {OVERVIEW_DAYS} days"
        ),
        "feature_rows": [
            (trend, sparkline([w.value for w in trend.series], label=f"{trend.feature.name} per day"))
            for trend in data.features
        ],
    }
    return render(request, "metering/overview/overview.html", context)
