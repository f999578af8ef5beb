"""The demo environment (`seed_demo`, `demo`): a catalog, customers and ~100,000 believable events.

The catalog follows the common configuration examples (API calls, credits, storage, peak concurrent users,
regional API requests, seats, unique active users, LLM tokens via CEL) and is created through the catalog's own
services, customers through `customer_create`, events through `events_clean` + `events_store` — the same
validation and storage path as the API, batched so the whole seed takes seconds on SQLite.

Events span the last 60 days with a daily rhythm (busy UTC working hours), a weekly one (quiet weekends), slow
growth and a few heavy customers. A handful of deliberately broken events in the last hour (wrong-case event
name, missing or wrong-case field, non-numeric value, unknown customer, a region no meter counts) give the
debugger something to explain. Everything derives from one random seed, so the same seed and `now` give the
same data, and event ids are stable: seeding again replaces events instead of adding to them.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.utils import timezone

from catalog.models import Feature
from catalog.services import feature_create
from flexmeter.models import Environment
from metering.ingest.validation import events_clean
from metering.ingest.writer import events_store
from metering.models import Customer
from metering.progress import ProgressBar
from metering.services import customer_create
from metering.usage.periods import billing_period_at

DEMO_SEED = 20260101
DEMO_EVENTS = 100_000
DEMO_DAYS = 60
BATCH_SIZE = 5000
SOURCE = "demo-seed"
PERIOD_HISTORY = dt.timedelta(days=7)


def _metered(name, lookup_key, event_name, aggregation, *, units, description, reset="BILLING_PERIOD", **extra):
    singular, plural = units
    return {
        "name": name,
        "lookup_key": lookup_key,
        "type": "metered",
        "description": description,
        "unit_singular": singular,
        "unit_plural": plural,
        "meter": {
            "name": name,
            "event_name": event_name,
            "aggregation": aggregation,
            "filters": extra.pop("filters", []),
            "reset_usage": reset,
        },
        **extra,
    }


REGIONS = ("NA", "EMEA", "APAC")

FEATURES: list[dict[str, Any]] = [
    _metered(
        "API Calls",
        "api_calls",
        "api.calls",
        {"type": "COUNT"},
        units=("API call", "API calls"),
        description="Every request to the public API. Resets each billing period.",
        alert_settings={
            "alert_enabled": True,
            "warning": {"threshold": "1500", "condition": "above"},
            "critical": {"threshold": "2500", "condition": "above"},
        },
        metadata={"category": "platform"},
    ),
    _metered(
        "Unique Active Users",
        "unique_active_users",
        "api.calls",
        {"type": "COUNT_UNIQUE", "field": "user_id"},
        units=("user", "users"),
        description="Distinct end users making API calls in the billing period (same event as API Calls).",
    ),
    _metered(
        "Credits Consumed",
        "model_credits",
        "model.usage",
        {"type": "SUM", "field": "credits"},
        units=("credit", "credits"),
        description="Model credits, summed over the billing period.",
        metadata={"category": "ai"},
    ),
    _metered(
        "LLM Tokens",
        "llm_tokens",
        "llm.request",
        {"type": "SUM", "expression": "input_tokens + output_tokens"},
        units=("token", "tokens"),
        description="Input plus output tokens of each LLM request, computed with a CEL expression.",
        # the heaviest demo customers pass these within a billing period, so the demo shows alerts in alarm
        alert_settings={
            "alert_enabled": True,
            "info": {"threshold": "100000", "condition": "above"},
            "warning": {"threshold": "250000", "condition": "above"},
            "critical": {"threshold": "400000", "condition": "above"},
        },
        metadata={"category": "ai"},
    ),
    _metered(
        "Storage",
        "storage_gb",
        "storage.usage",
        {"type": "SUM", "field": "gb"},
        units=("GB", "GB"),
        description="Gigabytes added (positive) or freed (negative); cumulative, never resets.",
        reset="NEVER",
    ),
    _metered(
        "Peak Concurrent Users",
        "peak_concurrent_users",
        "concurrent.users",
        {"type": "MAX", "field": "count"},
        units=("user", "users"),
        description="Highest sampled number of simultaneous users in the billing period.",
    ),
    *[
        _metered(
            f"API Requests ({region})",
            f"api_requests_{region.lower()}",
            "api_request",
            {"type": "SUM", "field": "value"},
            units=("request", "requests"),
            description=f"Requests served from the {region} region (one event, one meter per region via a filter).",
            filters=[{"key": "region", "operator": "in", "values": [region]}],
        )
        for region in REGIONS
    ],
    _metered(
        "Seats",
        "seats",
        "seats.changed",
        {"type": "WEIGHTED_SUM", "field": "delta"},
        units=("seat", "seats"),
        description="Time-weighted seats: each event adds or removes seats; the level carries across periods.",
        reset="NEVER",
    ),
    {"name": "Single Sign-On", "lookup_key": "sso", "type": "boolean", "description": "SAML and OIDC login."},
    {
        "name": "Support Tier",
        "lookup_key": "support_tier",
        "type": "static",
        "value": "Business hours, 4h response",
        "description": "Support level included in the plan.",
    },
    {"name": "Max Projects", "lookup_key": "max_projects", "type": "config", "value": "25"},
]

COMPANIES = (
    "Acme Corp", "Globex", "Initech", "Umbrella Health", "Hooli", "Stark Logistics", "Wayne Analytics",
    "Wonka Foods", "Tyrell Systems", "Cyberdyne Labs", "Soylent Energy", "Pied Piper", "Aperture Research",
    "Black Mesa", "Vandelay Imports", "Dunder Mifflin", "Oscorp", "Massive Dynamic", "Gringotts Finance",
    "Monarch Travel", "Nakatomi Trading", "Oceanic Air", "Prestige Worldwide", "Sirius Cybernetics",
    "Virtucon", "Wernham Hogg", "Zorg Industries", "Bluth Company", "Los Pollos Hermanos", "Sterling Cooper",
    "Gekko & Co", "Duff Brewing", "Krusty Krab", "Planet Express", "Blue Sun", "Weyland Freight",
)  # fmt: skip
MODELS = (("gpt-4o", 5), ("gpt-4o-mini", 9), ("claude-sonnet", 4), ("llama-3-70b", 2))
PATHS = ("/v1/search", "/v1/orders", "/v1/users", "/v1/reports", "/v1/webhooks", "/v1/invoices")
# Share of UTC hour-of-day activity: quiet nights, a morning ramp, busy European and American afternoons.
HOUR_WEIGHTS = (2, 1, 1, 1, 1, 2, 3, 5, 8, 10, 11, 12, 12, 13, 14, 15, 15, 14, 12, 10, 8, 6, 4, 3)
WEEKDAY_FACTORS = (1.0, 1.05, 1.08, 1.04, 0.92, 0.38, 0.3)  # Monday … Sunday
ACTIVITY_MIX = (("api.calls", 48), ("api_request", 20), ("model.usage", 16), ("llm.request", 16))


class _Choice:
    """A weighted choice with precomputed cumulative weights (`random.choices` recomputes them on every call)."""

    def __init__(self, pairs):
        self.items = [item for item, _ in pairs]
        self.cumulative = list(itertools.accumulate(weight for _, weight in pairs))
        self.total = self.cumulative[-1]

    def __call__(self, rng: random.Random):
        return self.items[bisect.bisect_right(self.cumulative, rng.random() * self.total)]


_HOUR = _Choice(list(enumerate(HOUR_WEIGHTS)))
_MODEL = _Choice(MODELS)
_STATUS = _Choice(((200, 80), (201, 10), (404, 6), (429, 3), (500, 1)))
_REQUEST_VALUE = _Choice(((1, 70), (2, 15), (5, 10), (10, 5)))
_MIX_ALL = _Choice(ACTIVITY_MIX)
_MIX_NO_AI = _Choice(ACTIVITY_MIX[:2])


@dataclass(frozen=True)
class DemoCustomer:
    external_id: str
    name: str
    weight: float
    region: str
    users: int
    seats: int
    uses_ai: bool
    data: dict[str, Any]


@dataclass
class DemoSeedReport:
    """What `demo_seed` created: counts per kind, plus how many events replaced ones from an earlier seed."""

    environment: str
    features: int = 0
    customers: int = 0
    events: int = 0
    replaced: int = 0
    broken: int = 0
    seconds: float = 0.0
    skipped: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [
            f"Seeded environment {self.environment} in {self.seconds:.1f} s: {self.features} features, "
            f"{self.customers} customers, {self.events:,} events ({self.broken} deliberately broken for the "
            f"debugger; {self.replaced:,} replaced events of an earlier seed).",
            *([f"  kept {len(self.skipped)} existing: {', '.join(self.skipped)}"] if self.skipped else []),
        ]


def current_period_with_history(anchor: dt.datetime, *, period: str, now: dt.datetime) -> dt.datetime:
    """`anchor`, moved back a day at a time while the billing period it gives at `now` began less than
    PERIOD_HISTORY (a period of the period's length for weekly customers: half of it) ago, so every demo customer's
    current period already holds usage (an anchor minutes before the seed would show zeros everywhere)."""
    wanted = PERIOD_HISTORY if period != "WEEKLY" else PERIOD_HISTORY / 2
    while now - billing_period_at(anchor=anchor, period=period, at=now)[0] < wanted:
        anchor -= dt.timedelta(days=1)
    return anchor


def demo_customers(rng: random.Random, *, now: dt.datetime) -> list[DemoCustomer]:
    """Customers with a long-tailed size distribution and varied billing anchors and cadences."""
    customers = []
    for index, name in enumerate(COMPANIES):
        external_id = name.lower().replace(" & ", "-").replace(" ", "-")
        weight = rng.paretovariate(1.3)
        created = now - dt.timedelta(days=rng.randint(70, 700), hours=rng.randint(0, 23), minutes=rng.randint(0, 59))
        # Anchors on varied days; a few on the 29th-31st show clamping to short months.
        anchor_day = 31 if index % 9 == 4 else rng.randint(1, 28)
        if anchor_day > 28:
            anchor = created.replace(year=created.year - 1, month=1, day=anchor_day, second=0, microsecond=0)
        else:
            anchor = created.replace(day=anchor_day, second=0, microsecond=0)
        period = "MONTHLY"
        if index % 11 == 3:
            period = "ANNUAL"
        elif index % 13 == 5:
            period = "QUARTERLY"
        elif index == 7:
            period = "WEEKLY"
        anchor = current_period_with_history(anchor.replace(hour=0, minute=0), period=period, now=now)
        data = {
            "external_id": external_id,
            "name": name,
            "email": f"billing@{external_id}.example",
            "metadata": {"plan": "enterprise" if weight > 3 else "growth" if weight > 1.6 else "starter"},
            "billing_anchor": anchor,
            "billing_period": period,
        }
        customers.append(
            DemoCustomer(
                external_id=external_id,
                name=name,
                weight=weight,
                region=rng.choices(REGIONS, weights=(5, 3, 2))[0],
                users=max(3, int(8 * weight * rng.uniform(0.6, 1.4))),
                seats=max(2, int(5 * weight)),
                uses_ai=rng.random() < 0.75,
                data=data,
            )
        )
    return customers


def _stamp(moment: dt.datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _Generator:
    def __init__(self, rng: random.Random, customers: list[DemoCustomer], *, now: dt.datetime, days: int):
        self.rng = rng
        self.customers = customers
        self.now = now
        self.start = (now - dt.timedelta(days=days)).replace(hour=0, minute=0, second=0, microsecond=0)
        self.days = days + 1
        self.cutoff = now - dt.timedelta(minutes=2)

    def event(self, name: str, customer: str, moment: dt.datetime, properties: dict) -> dict:
        return {
            "event_id": f"evt_{self.rng.getrandbits(64):016x}",
            "event_name": name,
            "external_customer_id": customer,
            "timestamp": _stamp(moment),
            "source": SOURCE,
            "properties": properties,
        }

    def day(self, index: int) -> dt.datetime:
        return self.start + dt.timedelta(days=index)

    def moment(self, day: dt.datetime, hour: int | None = None) -> dt.datetime | None:
        hour = _HOUR(self.rng) if hour is None else hour
        moment = day + dt.timedelta(milliseconds=hour * 3_600_000 + int(self.rng.random() * 3_600_000))
        return moment if moment < self.cutoff else None

    def state_events(self, total: int) -> Iterator[dict]:
        """Storage changes, concurrency samples and seat changes: a steady, size-driven background. Their density
        follows `total` (at 100,000 events: a storage change a day and a concurrency sample every 3 hours)."""
        rng = self.rng
        customer_days = len(self.customers) * self.days
        samples = max(1, min(8, round(0.18 * total / customer_days)))
        sample_hours = [1 + step * (24 // samples) for step in range(samples)]
        storage_chance = min(1.0, 0.02 * total / customer_days)
        for customer in self.customers:
            seats = customer.seats
            first = self.moment(self.day(0), hour=9)
            if first is not None:
                yield self.event("seats.changed", customer.external_id, first, {"delta": seats, "total": seats})
            for index in range(self.days):
                day = self.day(index)
                weekday = WEEKDAY_FACTORS[day.weekday()]
                moment = self.moment(day) if rng.random() < storage_chance else None
                if moment is not None:
                    gb = round(rng.uniform(-0.4, 1.6) * customer.weight, 1) or 0.1
                    yield self.event("storage.usage", customer.external_id, moment, {"gb": gb})
                for hour in sample_hours:
                    moment = self.moment(day, hour=hour)
                    if moment is not None:
                        level = customer.users * HOUR_WEIGHTS[hour] / 15 * weekday * rng.uniform(0.7, 1.2)
                        yield self.event(
                            "concurrent.users", customer.external_id, moment, {"count": max(1, round(level))}
                        )
                if rng.random() < 0.06:
                    moment = self.moment(day)
                    if moment is not None:
                        delta = rng.choice((1, 1, 2, 3, 5, -1, -2))
                        seats = max(1, seats + delta)
                        yield self.event(
                            "seats.changed", customer.external_id, moment, {"delta": delta, "total": seats}
                        )

    def activity_events(self, total: int) -> Iterator[dict]:
        """API, AI and regional traffic: intensity = customer size × weekday × growth × noise, spread over the
        day by HOUR_WEIGHTS, scaled so the whole period holds about `total` events."""
        rng = self.rng
        intensities = []
        for index in range(self.days):
            day = self.day(index)
            growth = 0.75 + 0.5 * index / max(self.days - 1, 1)
            for customer in self.customers:
                noise = rng.lognormvariate(0, 0.25)
                intensities.append((day, customer, customer.weight * WEEKDAY_FACTORS[day.weekday()] * growth * noise))
        scale = total / sum(intensity for _, _, intensity in intensities)
        for day, customer, intensity in intensities:
            expected = intensity * scale
            count = int(expected) + (rng.random() < expected - int(expected))
            mix = _MIX_ALL if customer.uses_ai else _MIX_NO_AI
            for _ in range(count):
                name = mix(rng)
                moment = self.moment(day)
                if moment is not None:
                    yield self.event(name, customer.external_id, moment, self.properties(name, customer))

    def properties(self, name: str, customer: DemoCustomer) -> dict:
        rng = self.rng
        if name == "api.calls":
            return {
                "path": rng.choice(PATHS),
                "method": "GET" if rng.random() < 0.7 else "POST",
                "status": _STATUS(rng),
                "user_id": f"{customer.external_id}-u{rng.randint(1, customer.users)}",
                "latency_ms": int(rng.lognormvariate(4, 0.6)),
            }
        if name == "api_request":
            region = customer.region if rng.random() < 0.8 else rng.choice(REGIONS)
            return {"region": region, "value": _REQUEST_VALUE(rng)}
        model = _MODEL(rng)
        if name == "model.usage":
            return {"model": model, "credits": rng.randint(5, 1250) / 100}
        return {
            "model": model,
            "input_tokens": int(rng.lognormvariate(6.5, 0.8)),
            "output_tokens": rng.randint(20, 900),
        }

    def broken_events(self, customers: list[DemoCustomer]) -> list[dict]:
        """One event per mistake the debugger explains, all in the last hour so they top the live stream."""
        first, second = customers[0].external_id, customers[1].external_id
        minutes = iter(range(50, 0, -6))

        def recent() -> dt.datetime:
            return self.now - dt.timedelta(minutes=next(minutes), seconds=self.rng.randrange(60))

        return [
            self.event("API.calls", first, recent(), {"path": "/v1/search", "user_id": f"{first}-u1"}),
            self.event("api_calls", second, recent(), {"path": "/v1/orders", "user_id": f"{second}-u2"}),
            self.event("model.usage", first, recent(), {"model": "gpt-4o"}),
            self.event("model.usage", second, recent(), {"model": "gpt-4o", "Credits": 4.5}),
            self.event("model.usage", first, recent(), {"model": "gpt-4o-mini", "credits": "twelve"}),
            self.event(
                "llm.request", second, recent(), {"model": "gpt-4o", "input_tokens": "n/a", "output_tokens": 80}
            ),
            self.event("api.calls", "newco-trial", recent(), {"path": "/v1/search", "user_id": "newco-u1"}),
            self.event("api_request", first, recent(), {"region": "LATAM", "value": 3}),
        ]


def demo_events(*, now: dt.datetime, seed: int = DEMO_SEED, total: int = DEMO_EVENTS, days: int = DEMO_DAYS):
    """The demo customers and their events (raw API-shaped dicts), deterministic for a given seed and `now`.

    Returns `(customers, events, broken)`; `events` includes `broken`.
    """
    rng = random.Random(seed)
    customers = demo_customers(rng, now=now)
    generator = _Generator(rng, customers, now=now, days=days)
    state = list(generator.state_events(total))
    broken = generator.broken_events(customers)
    activity = list(generator.activity_events(max(total - len(state) - len(broken), 0)))
    return customers, state + activity + broken, broken


def _features_create(environment: Environment, report: DemoSeedReport) -> None:
    existing = set(Feature.objects.for_environment(environment).visible().values_list("lookup_key", flat=True))
    for data in FEATURES:
        if data["lookup_key"] in existing:
            report.skipped.append(data["name"])
            continue
        feature_create(environment=environment, data=data)
        report.features += 1


def _customers_create(environment: Environment, customers: list[DemoCustomer], report: DemoSeedReport) -> None:
    existing = set(Customer.objects.for_environment(environment).active().values_list("external_id", flat=True))
    for customer in customers:
        if customer.external_id in existing:
            continue
        customer_create(environment=environment, data=customer.data)
        report.customers += 1


def demo_seed(
    *,
    environment: Environment,
    now: dt.datetime | None = None,
    seed: int = DEMO_SEED,
    events: int = DEMO_EVENTS,
    days: int = DEMO_DAYS,
    progress: ProgressBar | None = None,
) -> DemoSeedReport:
    """Create the demo catalog, customers and events in `environment`. Safe to run again: existing features and
    customers are kept, and events (stable ids) replace those of the earlier run."""
    started = time.monotonic()
    now = now or timezone.now()
    report = DemoSeedReport(environment=environment.slug)
    customers, raw_events, broken = demo_events(now=now, seed=seed, total=events, days=days)
    with transaction.atomic():
        _features_create(environment, report)
        _customers_create(environment, customers, report)
    if progress is not None:
        progress.total = len(raw_events)
    for start in range(0, len(raw_events), BATCH_SIZE):
        batch = events_clean(raw_events[start : start + BATCH_SIZE], now=now)
        result = events_store(environment=environment, events=batch)
        report.events += result.accepted
        report.replaced += result.duplicates
        if progress is not None:
            progress.update(items=report.events)
    report.broken = len(broken)
    report.seconds = time.monotonic() - started
    if progress is not None:
        progress.finish()
    return report
