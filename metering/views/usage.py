"""Dashboard Usage pages (SPEC §8): per feature across customers, per customer for a billing period, CSV exports.

Every number comes from the usage engine through `metering.usage.dashboard` / `metering.usage.selectors`; views
only parse the query string and render.
"""

from __future__ import annotations

import datetime as dt

from django import forms
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET

from catalog.models import Feature, FeatureStatus, FeatureType, ResetUsage
from catalog.selectors import feature_get, metered_features
from flexmeter.csv_cells import csv_writer
from flexmeter.dashboard import PAGE_SIZE, dashboard_view, render_page
from flexmeter.decimals import format_quantity, rfc3339
from flexmeter.errors import NotFound
from metering import selectors
from metering.usage.dashboard import (
    CHART_SIZES,
    DEFAULT_WINDOW,
    WINDOWS,
    billing_periods,
    bucket_starts,
    calendar_window,
    chart_size_for,
    chart_sizes_offered,
    customer_feature_series,
    customer_rows_sorted,
    feature_trends,
    feature_usage_overview,
    windows_filled,
)
from metering.usage.selectors import customer_current_usage
from metering.views.charts import bar_chart, sparkline

SORTS = {"usage": "Usage, high to low", "usage_asc": "Usage, low to high", "customer": "Customer id"}


class FeatureUsageForm(forms.Form):
    window = forms.ChoiceField(required=False, choices=list(WINDOWS.items()))
    size = forms.ChoiceField(required=False, choices=list(CHART_SIZES.items()))
    q = forms.CharField(required=False, max_length=255)
    sort = forms.ChoiceField(required=False, choices=list(SORTS.items()))

    def value(self, name: str, default: str) -> str:
        return (self.cleaned_data.get(name) if self.is_valid() else "") or default


@require_GET
@dashboard_view
def usage_index(request: HttpRequest) -> HttpResponse:
    """Pick a feature or a customer; `?customer=<external id>` jumps to that customer's usage."""
    external_id = request.GET.get("customer", "").strip()
    error = ""
    if external_id:
        try:
            customer = selectors.customer_get_by_external_id(environment=request.environment, external_id=external_id)
        except NotFound:
            error = f"No active customer has the external id “{external_id}”."
        else:
            return redirect("metering:usage_customer", public_id=customer.public_id)
    features = list(metered_features(environment=request.environment))
    start, end = calendar_window(DEFAULT_WINDOW, now=timezone.now())
    trends = feature_trends(features=features, start=start, end=end)
    context = {
        "rows": [
            (trend, sparkline([w.value for w in trend.series], label=f"{trend.feature.name} per day"))
            for trend in trends
        ],  # fmt: skip
        "window": DEFAULT_WINDOW,
        "window_label": WINDOWS[DEFAULT_WINDOW],
        "start": start,
        "last_day": end - dt.timedelta(microseconds=1),
        "customer_query": external_id,
        "error": error,
    }
    return render(request, "metering/usage/index.html", context, status=404 if error else 200)


def _feature_or_404(request: HttpRequest, public_id: str) -> Feature:
    try:
        feature = feature_get(environment=request.environment, feature_id=public_id)
    except NotFound:
        raise Http404("No such feature in this environment") from None
    if feature.type != FeatureType.METERED or feature.meter is None or feature.status == FeatureStatus.DELETED:
        raise Http404("This feature is not metered")
    return feature


def _feature_usage(request: HttpRequest, feature: Feature):
    form = FeatureUsageForm(request.GET)
    window = form.value("window", DEFAULT_WINDOW)
    start, end = calendar_window(window, now=timezone.now())
    size = chart_size_for(form.value("size", "DAY"), start=start, end=end)
    overview = feature_usage_overview(feature=feature, start=start, end=end, window_size=size)
    rows = customer_rows_sorted(overview.customers, sort=form.value("sort", "usage"), query=form.value("q", ""))
    return form, window, start, end, size, overview, rows


@require_GET
@dashboard_view
def usage_feature(request: HttpRequest, public_id: str) -> HttpResponse:
    """One feature across customers over a calendar window: total, chart, per-customer table."""
    feature = _feature_or_404(request, public_id)
    form, window, start, end, size, overview, rows = _feature_usage(request, feature)
    series = windows_filled(overview.windows, bucket_starts(start=start, end=end, size=size))
    asked = form.value("size", "DAY")
    context = {
        "feature": feature,
        "meter": feature.meter,
        "form": form,
        "windows": WINDOWS,
        "window": window,
        "sizes": CHART_SIZES,
        "size_choices": [
            (key, CHART_SIZES[key], offered) for key, offered in chart_sizes_offered(start=start, end=end).items()
        ],
        "size": size,
        "size_label": CHART_SIZES[size],
        "size_fallback": CHART_SIZES[asked] if asked != size else "",
        "sorts": SORTS,
        "sort": form.value("sort", "usage"),
        "start": start,
        "last_day": end - dt.timedelta(microseconds=1),
        "total": overview.total,
        "chart": bar_chart(
            series,
            size=size,
            unit_singular=feature.unit_singular,
            unit_plural=feature.unit_plural,
            empty=f"No {feature.meter.event_name} events counted in this window.",
        ),  # fmt: skip
        "has_usage": any(point.value is not None for point in series),
        "page": Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page")),
        "customer_count": len(overview.customers),
        "is_cumulative": feature.meter.reset_usage == ResetUsage.NEVER,
    }
    return render_page(request, "metering/usage/feature.html", context, partial="customer-usage")


def _csv_response(filename: str, header: list[str], rows) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    writer = csv_writer(response)
    writer.writerow(header)
    writer.writerows(rows)
    return response


def _plain(value) -> str:
    """Exact digits for CSV: no thousands separators, empty for no value."""
    return "" if value is None else format(value, "f")


@require_GET
@dashboard_view
def usage_feature_csv(request: HttpRequest, public_id: str) -> HttpResponse:
    """The per-customer table of the feature page (same window, filter and order), every row."""
    feature = _feature_or_404(request, public_id)
    _form, _window, start, end, _size, _overview, rows = _feature_usage(request, feature)
    unit = feature.unit_plural or feature.unit_singular
    return _csv_response(
        f"{feature.lookup_key or feature.public_id}-usage.csv",
        ["external_customer_id", "customer_id", "customer_name", "value", "unit", "window_start", "window_end"],
        (
            [
                row.external_id,
                row.customer.public_id if row.customer else "",
                row.customer.name if row.customer else "",
                _plain(row.value),
                unit,
                rfc3339(start),
                rfc3339(end),
            ]  # fmt: skip
            for row in rows
        ),
    )


def _customer_or_404(request: HttpRequest, public_id: str):
    try:
        customer = selectors.customer_get_active(environment=request.environment, customer_id=public_id)
    except NotFound:
        raise Http404("No such customer in this environment") from None
    customer.environment = request.environment  # already loaded: spares the selectors a query
    return customer


def _customer_usage(request: HttpRequest, customer):
    periods = billing_periods(customer=customer, now=timezone.now())
    try:
        index = min(max(int(request.GET.get("period", 0)), 0), len(periods) - 1)
    except ValueError:
        index = 0
    start, end = periods[index]
    usage = customer_current_usage(customer=customer, at=start)
    return periods, index, usage


@require_GET
@dashboard_view
def usage_customer(request: HttpRequest, public_id: str) -> HttpResponse:
    """Every metered feature's usage for the customer's current (or a chosen earlier) billing period, with a chart."""
    customer = _customer_or_404(request, public_id)
    periods, index, usage = _customer_usage(request, customer)
    features = [row.feature for row in usage.features]
    chosen = next((f for f in features if f.public_id == request.GET.get("feature")), features[0] if features else None)
    chart, chart_unit = "", "day"
    if chosen is not None:
        size = chart_size_for("DAY", start=usage.period_start, end=usage.period_end)
        chart_unit = size.lower()
        series = customer_feature_series(feature=chosen, customer=customer, environment=request.environment,
                                         start=usage.period_start, end=usage.period_end, window_size=size)  # fmt: skip
        chart = bar_chart(series, size=size, unit_singular=chosen.unit_singular, unit_plural=chosen.unit_plural,
                          empty="No usage in this period.")  # fmt: skip
    context = {
        "customer": customer,
        "usage": usage,
        "periods": [(i, start, end - dt.timedelta(microseconds=1)) for i, (start, end) in enumerate(periods)],
        "period_index": index,
        "last_day": usage.period_end - dt.timedelta(microseconds=1),
        "chosen": chosen,
        "chart": chart,
        "chart_unit": chart_unit,
    }
    return render_page(request, "metering/usage/customer.html", context, partial="customer-usage-body")


@require_GET
@dashboard_view
def usage_customer_csv(request: HttpRequest, public_id: str) -> HttpResponse:
    customer = _customer_or_404(request, public_id)
    _periods, _index, usage = _customer_usage(request, customer)
    return _csv_response(
        f"{customer.external_id}-usage-{usage.period_start:%Y-%m-%d}.csv",
        [
            "feature_id",
            "feature",
            "lookup_key",
            "value",
            "unit",
            "display",
            "period_start",
            "period_end",
            "reset",
            "next_usage_reset_at",
        ],  # fmt: skip
        (
            [
                row.feature.public_id,
                row.feature.name,
                row.feature.lookup_key,
                _plain(row.value),
                row.unit,
                format_quantity(
                    row.value, unit_singular=row.feature.unit_singular, unit_plural=row.feature.unit_plural
                ),
                rfc3339(usage.period_start),
                rfc3339(usage.period_end),
                row.feature.meter.reset_usage,
                rfc3339(row.next_usage_reset_at) if row.next_usage_reset_at else "",
            ]  # fmt: skip
            for row in usage.features
        ),
    )
