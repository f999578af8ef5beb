"""Page reads of the dashboard's Usage pages, its overview and the feature page's usage summary. Every usage
number comes from the engine (`run_usage_queries`, which reads whole days from rollups); event counts and last-seen
times come from index-only reads in `metering.selectors`.

Per feature, across customers: customers have different billing anchors, so "the current period across
customers" has no single meaning. The feature page therefore uses one calendar window in UTC that the user picks
(the last 30 days by default: a month of daily bars whatever the date) for the total, the chart *and* the
per-customer table, and says so; a customer's own billing period is on that customer's usage page
(`customer_current_usage`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import cast

from django.utils import timezone as django_timezone

from catalog.models import Feature
from catalog.selectors import FeatureActivity
from metering.debugger.stream import UnmatchedName, unmatched_event_names
from metering.models import Customer, CustomerStatus
from metering.selectors import CustomerActivity, customers_activity, event_counts_by_day, latest_event_customer
from metering.usage.engine import run_usage_queries
from metering.usage.periods import add_months, billing_period_at, bucket_starts
from metering.usage.selectors import FeatureUsage, customer_current_usage, meter_usage, usage_query_build
from metering.usage.spec import AggregationSpec, MeterNotComputable, UsageResult, UsageWindow

UTC = dt.UTC
# name → label; the window each one covers is computed by `calendar_window`
WINDOWS = {
    "this_month": "This month",
    "last_month": "Last month",
    "7d": "Last 7 days",
    "30d": "Last 30 days",
    "90d": "Last 90 days",
}
DEFAULT_WINDOW = "30d"
CHART_SIZES = {"HOUR": "Hourly", "DAY": "Daily", "WEEK": "Weekly"}
MAX_BARS = 200


def calendar_window(name: str, *, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """`[start, end)` in UTC: calendar months start on the 1st; "last N days" are N whole days ending today."""
    now = now.astimezone(UTC)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    month = today.replace(day=1)
    if name == "last_month":
        return add_months(month, -1), month
    if name in ("7d", "30d", "90d"):
        days = int(name[:-1])
        return today - dt.timedelta(days=days - 1), today + dt.timedelta(days=1)
    return month, add_months(month, 1)


def chart_size_for(size: str, *, start: dt.datetime, end: dt.datetime) -> str:
    """The asked bar size, coarsened when the window would need more than MAX_BARS bars (pages say so: see
    `chart_sizes_offered`)."""
    sizes = list(CHART_SIZES)
    index = sizes.index(size) if size in CHART_SIZES else sizes.index("DAY")
    while index < len(sizes) - 1 and len(bucket_starts(start=start, end=end, size=sizes[index])) > MAX_BARS:
        index += 1
    return sizes[index]


def chart_sizes_offered(*, start: dt.datetime, end: dt.datetime) -> dict[str, bool]:
    """Each bar size and whether the window can be drawn with it (at most MAX_BARS bars)."""
    return {size: len(bucket_starts(start=start, end=end, size=size)) <= MAX_BARS for size in CHART_SIZES}


def windows_filled(windows: list[UsageWindow], starts: list[dt.datetime]) -> list[UsageWindow]:
    """Every bucket in order; buckets without events (omitted by the engine) get no value."""
    by_start = {window.start: window.value for window in windows}
    return [UsageWindow(start, by_start.get(start)) for start in starts]


@dataclass(frozen=True)
class CustomerRow:
    """One customer's usage of a feature in the window. `customer` is None when no active customer has the id."""

    external_id: str
    value: Decimal | None
    customer: Customer | None


@dataclass(frozen=True)
class FeatureUsageOverview:
    total: Decimal | None
    windows: list[UsageWindow]
    customers: list[CustomerRow]


def feature_usage_overview(
    *, feature, start: dt.datetime, end: dt.datetime, window_size: str = "DAY"
) -> FeatureUsageOverview:
    """Total, per-window series and per-customer values of a metered feature over `[start, end)`.

    One statement computes all three through the engine; one more query names the customers. Customers appear
    when they have events in the window (or, for a meter that never resets, before its end).
    """
    meter = feature.meter
    spec = AggregationSpec.from_meter(meter)
    common = {"spec": spec, "environment_id": feature.environment_id, "start": start, "end": end}
    total_result, per_customer_result = run_usage_queries(
        [usage_query_build(**common, window_size=window_size), usage_query_build(**common, by_customer=True)]
    )
    total = cast(UsageResult, total_result)
    per_customer = cast(dict[str, Decimal | None], per_customer_result)
    known = {
        customer.external_id: customer
        for customer in Customer.objects.filter(
            environment_id=feature.environment_id, status=CustomerStatus.ACTIVE, external_id__in=list(per_customer)
        )
    }
    rows = [
        CustomerRow(external_id=external_id, value=value, customer=known.get(external_id))
        for external_id, value in per_customer.items()
    ]
    return FeatureUsageOverview(total=total.value, windows=total.windows, customers=rows)


def customer_rows_sorted(rows: list[CustomerRow], *, sort: str, query: str = "") -> list[CustomerRow]:
    """Filter by a case-insensitive substring of the external id or name; sort by usage (high first) or id."""
    if query:
        needle = query.lower()
        rows = [
            row
            for row in rows
            if needle in row.external_id.lower() or (row.customer and needle in row.customer.name.lower())
        ]
    if sort == "customer":
        return sorted(rows, key=lambda row: row.external_id)
    if sort == "usage_asc":
        return sorted(rows, key=lambda row: (row.value is None, row.value or 0, row.external_id))
    return sorted(rows, key=lambda row: (row.value is None, -(row.value or 0), row.external_id))


def billing_periods(*, customer, now: dt.datetime, count: int = 12) -> list[tuple[dt.datetime, dt.datetime]]:
    """The customer's current billing period and the `count - 1` before it, newest first."""
    periods = [billing_period_at(anchor=customer.billing_anchor, period=customer.billing_period, at=now)]
    while len(periods) < count:
        previous_start = periods[-1][0] - dt.timedelta(microseconds=1)
        if previous_start < customer.billing_anchor:  # nothing was billed before the anchor
            break
        periods.append(billing_period_at(anchor=customer.billing_anchor, period=customer.billing_period,
                                         at=previous_start))  # fmt: skip
    return periods


def customer_feature_series(
    *, feature, customer, environment, start: dt.datetime, end: dt.datetime, window_size: str
) -> list[UsageWindow]:
    """Per-window usage of one feature for one customer within `[start, end)`, every bucket present."""
    result = meter_usage(
        meter=feature.meter,
        environment=environment,
        customer_external_id=customer.external_id,
        start=start,
        end=end,
        window_size=window_size,
    )
    return windows_filled(result.windows, bucket_starts(start=start, end=end, size=window_size))


@dataclass(frozen=True)
class PortalFeature:
    usage: FeatureUsage
    series: list[UsageWindow]


@dataclass(frozen=True)
class PortalUsage:
    """A customer's current billing period for its portal: every metered feature's usage and its chart series."""

    period_start: dt.datetime
    period_end: dt.datetime
    chart_size: str
    features: list[PortalFeature]


def portal_usage(*, customer, now: dt.datetime | None = None) -> PortalUsage:
    """The same numbers as `GET /v1/customers/{id}/usage` (one engine statement gives totals and windows)."""
    now = now or django_timezone.now()
    start, end = billing_period_at(anchor=customer.billing_anchor, period=customer.billing_period, at=now)
    size = chart_size_for("DAY", start=start, end=end)
    usage = customer_current_usage(customer=customer, at=now, window_size=size)
    starts = bucket_starts(start=start, end=end, size=size)
    return PortalUsage(
        period_start=usage.period_start,
        period_end=usage.period_end,
        chart_size=size,
        features=[PortalFeature(usage=row, series=windows_filled(row.windows, starts)) for row in usage.features],
    )


@dataclass(frozen=True)
class FeatureTrend:
    """A metered feature's total over a window and its per-day series (every day present). `problem` is set, and
    the numbers empty, when the feature's meter cannot be computed any more."""

    feature: Feature
    total: Decimal | None
    series: list[UsageWindow]
    problem: str = ""

    @property
    def has_usage(self) -> bool:
        return any(window.value is not None for window in self.series)


def feature_trends(
    *, features: list, start: dt.datetime, end: dt.datetime, extra: list | None = None
) -> list[FeatureTrend]:
    """Total and daily series of each metered feature over `[start, end)`, all features in one engine statement
    (whole days come from rollups), in the order given. `extra` queries ride along in the same statement; their
    results replace them in the list, in place."""
    queries, computable, trends = [], [], {}
    starts = bucket_starts(start=start, end=end, size="DAY")
    for feature in features:
        try:
            spec = AggregationSpec.from_meter(feature.meter)
        except MeterNotComputable as exc:
            trends[feature.pk] = FeatureTrend(feature=feature, total=None, series=[], problem=exc.message)
            continue
        queries.append(usage_query_build(spec=spec, environment_id=feature.environment_id, start=start, end=end,
                                         window_size="DAY"))  # fmt: skip
        computable.append(feature)
    extra = extra if extra is not None else []
    results = run_usage_queries(queries + extra) if queries or extra else []
    for feature, result in zip(computable, results[: len(queries)], strict=True):
        result = cast(UsageResult, result)
        trends[feature.pk] = FeatureTrend(feature=feature, total=result.value,
                                          series=windows_filled(result.windows, starts))  # fmt: skip
    extra[:] = results[len(queries) :]
    return [trends[feature.pk] for feature in features]


# --- the overview (the dashboard's home) ------------------------------------------------------------------------

OVERVIEW_DAYS = 7
OVERVIEW_FEATURES = 6
OVERVIEW_CUSTOMERS = 5
OVERVIEW_REASONS = 3


@dataclass(frozen=True)
class DayCount:
    day: dt.date
    events: int


@dataclass(frozen=True)
class ActiveCustomer:
    external_id: str
    value: Decimal | None
    customer: Customer | None


@dataclass(frozen=True)
class Overview:
    """What the overview shows: events today and over the last OVERVIEW_DAYS UTC days (per day, oldest first),
    the last 24 hours' events that no meter counted (the most frequent names first), each metered feature over
    the usage window, and the customers with the most usage of the leading feature."""

    now: dt.datetime
    today: int
    week: int
    days: list[DayCount]
    last_day_events: int
    unmatched: list[UnmatchedName]
    unmatched_events: int
    window_start: dt.datetime
    window_end: dt.datetime
    features: list[FeatureTrend]
    leading: FeatureTrend | None
    customers: list[ActiveCustomer]

    @property
    def unmatched_share(self) -> Decimal | None:
        if not self.last_day_events:
            return None
        return Decimal(self.unmatched_events * 100) / Decimal(self.last_day_events)


def _computable(feature) -> bool:
    try:
        AggregationSpec.from_meter(feature.meter)
    except MeterNotComputable:
        return False
    return True


def overview_read(*, environment, features: list, now: dt.datetime | None = None) -> Overview:
    """The overview's numbers in a handful of statements that read indexes and rollups, never a whole table:
    event counts per day (the (environment, timestamp) index), unmatched names of the last 24 hours (the
    debugger's own predicate), every feature's total and daily series in one engine statement, and the leading
    feature's usage per customer."""
    now = now or django_timezone.now()
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    first = today - dt.timedelta(days=OVERVIEW_DAYS - 1)
    per_day, last_day_events = event_counts_by_day(
        environment=environment, start=first, end=today + dt.timedelta(days=1), since=now - dt.timedelta(hours=24)
    )
    starts = bucket_starts(start=first, end=today + dt.timedelta(days=1), size="DAY")
    days = [DayCount(day.date(), per_day.get(day.date(), 0)) for day in starts]
    unmatched = unmatched_event_names(environment=environment, start=now - dt.timedelta(hours=24), end=now)
    start, end = calendar_window(DEFAULT_WINDOW, now=now)
    # "most active" reads best as most events: customers by the first COUNT feature when there is one, computed
    # in the same engine statement as every feature's trend
    candidates = [feature for feature in features if _computable(feature)]
    leading_feature = next((f for f in candidates if f.meter.aggregation_type == "COUNT"), None) or next(
        iter(candidates), None
    )
    extra = []
    if leading_feature is not None:
        spec = AggregationSpec.from_meter(leading_feature.meter)
        extra.append(usage_query_build(spec=spec, environment_id=environment.pk, start=start, end=end,
                                       by_customer=True))  # fmt: skip
    trends = feature_trends(features=features, start=start, end=end, extra=extra)
    ranked = sorted(trends, key=lambda trend: (not trend.has_usage, trend.problem != "", -(trend.total or 0)))
    leading = next((trend for trend in trends if trend.feature == leading_feature and trend.has_usage), None)
    customers: list[ActiveCustomer] = []
    if leading is not None:
        per_customer = cast(dict[str, Decimal | None], extra[0])
        top = sorted(per_customer.items(), key=lambda item: (item[1] is None, -(item[1] or 0), item[0]))
        top = top[:OVERVIEW_CUSTOMERS]
        known = {
            customer.external_id: customer
            for customer in Customer.objects.filter(
                environment_id=environment.pk, status=CustomerStatus.ACTIVE, external_id__in=[key for key, _ in top]
            )
        }
        customers = [ActiveCustomer(external_id, value, known.get(external_id)) for external_id, value in top]
    return Overview(
        now=now,
        today=days[-1].events,
        week=sum(day.events for day in days),
        days=days,
        last_day_events=last_day_events,
        unmatched=unmatched[:OVERVIEW_REASONS],
        unmatched_events=sum(name.count for name in unmatched),
        window_start=start,
        window_end=end,
        features=ranked[:OVERVIEW_FEATURES],
        leading=leading,
        customers=customers,
    )


def feature_activity_read(*, feature, now: dt.datetime | None = None) -> FeatureActivity | None:
    """The feature page's usage summary (registered with the catalog at start-up): the total over the default
    window (one engine statement), whether its meter's event name has any stored event, and the external id of
    a customer the sample event can name — the last one that sent this event name when it exists, else the
    newest customer."""
    start, end = calendar_window(DEFAULT_WINDOW, now=now or django_timezone.now())
    [trend] = feature_trends(features=[feature], start=start, end=end)
    latest = latest_event_customer(environment_id=feature.environment_id, event_name=feature.meter.event_name)
    customers = Customer.objects.filter(environment_id=feature.environment_id, status=CustomerStatus.ACTIVE)
    sample = latest if latest is not None and customers.filter(external_id=latest).exists() else None
    if sample is None:
        sample = customers.order_by("-created_at", "-id").values_list("external_id", flat=True).first() or ""
    return FeatureActivity(
        total=None if trend.problem else trend.total,
        window_label=WINDOWS[DEFAULT_WINDOW],
        has_events=latest is not None,
        sample_customer=sample,
    )


CUSTOMER_ACTIVITY_DAYS = 7


def customer_list_activity(
    *, environment, customers: list, now: dt.datetime | None = None
) -> dict[str, CustomerActivity]:
    """Events over the last CUSTOMER_ACTIVITY_DAYS days and last-seen time of each listed customer, by external id
    (read through the index per customer, so a page costs what its customers sent, not the table)."""
    since = (now or django_timezone.now()) - dt.timedelta(days=CUSTOMER_ACTIVITY_DAYS)
    return customers_activity(environment=environment, external_ids=[c.external_id for c in customers], since=since)
