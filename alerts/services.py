"""Alert evaluation (SPEC §11): consume the usage marks ingest wrote, evaluate the affected (feature, customer) pairs
with usage computed in bulk, record every state change once, and hand the webhook outbox its rows.

One pass costs a fixed number of statements whatever the number of customers: the marks, the customers they name,
the features their event names feed, the customers' subscriptions and entitlements; then for each meter one usage
statement (per distinct window a customer needs on it), the current states and the writes — new states, changed
states (compare and set on the state's version), log rows, limits reached, outbox rows — each one statement over a
JSON array of rows; last the marks consumed.

Safety: the writes of a pass are one transaction, so a pass that fails half-way (killed, an exception) leaves the
marks in place and records nothing: the next pass does it again. Marks are deleted only if their version is still
the one read, so a write that lands during a pass is evaluated by the next one. Evaluators do not overlap (a
PostgreSQL advisory lock; SQLite runs each pass in one IMMEDIATE transaction, under its write lock), and if they
ever did, the unique constraints and the compare-and-set would still let each crossing fire once.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections import Counter, defaultdict
from collections.abc import Generator, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from decimal import Decimal
from typing import NamedTuple

from django.db import connection, connections, transaction
from django.utils import timezone

from alerts.models import AlertLevel, AlertLogEntry, AlertState, LimitReached
from alerts.rules import LevelRule, level_rule
from catalog.models import AggregationType, Feature, FeatureStatus, FeatureType, Meter
from entitlements.models import Entitlement, Subscription
from entitlements.rules import Source, combine_sources, reset_window
from flexmeter.decimals import decimal_text, rfc3339
from metering.models import Customer, CustomerStatus, UsageMark
from metering.usage.periods import billing_period_at
from metering.usage.selectors import usage_for_customer_windows
from webhooks.models import EventType
from webhooks.outbox import publish_to, subscribers

FEATURE_ALERT = EventType.FEATURE_USAGE_ALERT.value
LIMIT_REACHED = EventType.ENTITLEMENT_USAGE_LIMIT_REACHED.value
MARKS_PER_PASS = 50_000
USAGE_READERS = 2  # PostgreSQL connections a pass reads usage on at once (see _read_all)
MAX_PASSES = 20
_LOCK_KEY = 7_163_512_689_012  # the evaluator's PostgreSQL advisory lock


@dataclass
class EvaluationReport:
    """What one evaluation run did (kept in the worker's job result)."""

    marks: int = 0
    pairs: int = 0
    changes: int = 0
    limits_reached: int = 0
    outbox: int = 0
    skipped: bool = False

    def as_dict(self) -> dict[str, int | bool]:
        return dict(self.__dict__)


def alerts_evaluate(*, now: dt.datetime | None = None, marks_per_pass: int = MARKS_PER_PASS) -> EvaluationReport:
    """Evaluate every pair ingest marked, pass after pass until the marks are consumed (at most `MAX_PASSES`).

    Skips (`skipped`) when another evaluator is running. Safe to run again at any time.
    """
    report = EvaluationReport()
    with _evaluator_lock() as held:
        if not held:
            report.skipped = True
            return report
        for _ in range(MAX_PASSES):
            if _evaluation_pass(now or timezone.now(), marks_per_pass, report) < marks_per_pass:
                break
    return report


@contextlib.contextmanager
def _evaluator_lock() -> Iterator[bool]:
    """One evaluator at a time on PostgreSQL: a session advisory lock, released at the end (or when a killed
    worker's connection closes). SQLite needs none: each pass holds its write lock throughout."""
    if connection.vendor != "postgresql":
        yield True
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [_LOCK_KEY])
        held = cursor.fetchone()[0]
    try:
        yield held
    finally:
        if held:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [_LOCK_KEY])


# --- one pass ------------------------------------------------------------------------------------------------


class _Customer(NamedTuple):
    """What a pass needs of a customer (plain tuples: a pass may read tens of thousands)."""

    pk: int
    environment_id: int
    external_id: str
    public_id: str
    billing_anchor: dt.datetime
    billing_period: str


@dataclass(frozen=True)
class _Pair:
    """A (feature, customer) to evaluate over `[start, end)` with the feature's rule."""

    feature: Feature
    rule: LevelRule
    customer: _Customer
    start: dt.datetime
    end: dt.datetime


@dataclass
class _Limit:
    feature: Feature
    customer: _Customer
    start: dt.datetime
    end: dt.datetime
    limit: Decimal
    is_soft: bool


@dataclass
class _Plan:
    alerts: list[_Pair] = field(default_factory=list)
    limits: list[_Limit] = field(default_factory=list)


def _evaluation_pass(now: dt.datetime, limit: int, report: EvaluationReport) -> int:
    """Read up to `limit` marks, evaluate what they name, record it and delete the marks; returns the marks read."""
    # On SQLite the whole pass is one IMMEDIATE transaction. On PostgreSQL only the writes are: the usage engine
    # then reads each meter in its own consistent snapshot, and no lock is held while it computes.
    whole = transaction.atomic() if connection.vendor != "postgresql" else contextlib.nullcontext()
    with whole:
        marks = list(
            UsageMark.objects.order_by("id").values_list(
                "id", "environment_id", "external_customer_id", "event_name", "version"
            )[:limit]
        )
        if not marks:
            return 0
        plan = _plan(marks, now)
        parallel = _reads_in_parallel()
        meters = _usage(plan, parallel=parallel)
        if not parallel:
            # read in this connection: every read before the write transaction opens, each in its own snapshot
            meters = (meter for meter in list(meters))
        lost: set[tuple[int, str]] = set()
        # closing: a pass that fails stops its readers before it returns (no read outlives the evaluator's lock)
        with contextlib.closing(meters), transaction.atomic():
            # read on connections of their own, a meter is recorded as soon as its usage is in, while the others
            # are still read: the writes of a first pass (tens of thousands of states and log rows) then overlap
            # the slowest read instead of following it
            for part, usage in meters:
                lost |= _record(part, usage, now, report)
            _marks_delete([(m[0], m[4]) for m in marks if (m[1], m[2]) not in lost])
    report.marks += len(marks)
    report.pairs += len(plan.alerts)
    return len(marks)


def _plan(marks: list[tuple], now: dt.datetime) -> _Plan:
    """The pairs the marks name: every alerting feature (and every metered entitlement with a limit) fed by a marked
    event name, for each marked customer that exists."""
    wanted_customers = sorted({(environment_id, customer) for _, environment_id, customer, _, _ in marks})
    source, params = _rows({"e": "bigint", "x": "text"}, [{"e": e, "x": x} for e, x in wanted_customers])
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.id, c.environment_id, c.external_id, c.public_id, c.billing_anchor, c.billing_period "
            f"FROM {Customer._meta.db_table} c JOIN {source} ON c.environment_id = v.e AND c.external_id = v.x "
            "WHERE c.status = %s",
            [*params, CustomerStatus.ACTIVE],
        )
        customers = {
            (row[1], row[2]): _Customer(row[0], row[1], row[2], row[3], _aware(row[4]), row[5])
            for row in cursor.fetchall()
        }
    names = {(environment_id, name) for _, environment_id, _, name, _ in marks}
    features = list(
        Feature.objects.filter(
            environment_id__in={environment_id for environment_id, _ in names},
            type=FeatureType.METERED,
            status=FeatureStatus.PUBLISHED,
            meter__event_name__in={name for _, name in names},
        ).select_related("meter")
    )
    by_name: dict[tuple[int, str], list[Feature]] = defaultdict(list)
    for feature in features:
        meter = feature.meter
        if meter is not None and (feature.environment_id, meter.event_name) in names:
            by_name[(feature.environment_id, meter.event_name)].append(feature)
    touched: dict[tuple[int, int], tuple[Feature, _Customer]] = {}
    for _, environment_id, external_id, name, _ in marks:
        customer = customers.get((environment_id, external_id))
        if customer is None:
            continue
        for feature in by_name.get((environment_id, name), ()):
            touched[(feature.id, customer.pk)] = (feature, customer)
    plan = _Plan()
    rules = {feature.id: level_rule(feature.alert_settings) for feature in features}
    periods: dict[tuple[dt.datetime, str], tuple[dt.datetime, dt.datetime]] = {}
    for feature, customer in touched.values():
        rule = rules[feature.id]
        if rule is not None:
            key = (customer.billing_anchor, customer.billing_period)
            if key not in periods:
                periods[key] = billing_period_at(anchor=key[0], period=key[1], at=now)
            plan.alerts.append(_Pair(feature, rule, customer, *periods[key]))
    plan.limits = _limits(touched, now)
    return plan


def customer_period(customer, at: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """The billing period an alert state belongs to (SPEC §5.4): the customer's current one."""
    return billing_period_at(anchor=customer.billing_anchor, period=customer.billing_period, at=at)


def _aware(value) -> dt.datetime:
    """A timestamp column read through a plain cursor (SQLite gives the ORM's UTC text)."""
    if isinstance(value, str):
        return dt.datetime.fromisoformat(value).replace(tzinfo=dt.UTC)
    return value


def _limits(touched: Mapping[tuple[int, int], tuple[Feature, _Customer]], now: dt.datetime) -> list[_Limit]:
    """Metered entitlements with a limit of the touched pairs, combined as SPEC §10 combines sources, with the
    primary source's reset window: two statements for any number of customers."""
    if not touched:
        return []
    customers = {customer.pk: customer for _, customer in touched.values()}
    source, params = _rows({"c": "bigint"}, [{"c": pk} for pk in sorted(customers)])
    moment = connection.ops.adapt_datetimefield_value(now)
    subscriptions = list(
        Subscription.objects.raw(
            f"SELECT s.* FROM {Subscription._meta.db_table} s JOIN {source} ON s.customer_id = v.c "
            "WHERE s.start_date <= %s AND (s.end_date IS NULL OR s.end_date > %s)",
            [*params, moment, moment],
        )
    )
    if not subscriptions:
        return []
    features = {feature.id: feature for feature, _ in touched.values()}
    entitlements = defaultdict(list)
    for entitlement in Entitlement.objects.filter(
        plan_id__in={s.plan_id for s in subscriptions}, feature_id__in=list(features)
    ):
        entitlements[entitlement.plan_id].append(entitlement)
    grants: dict[tuple[int, int], list[Source]] = defaultdict(list)
    for subscription in subscriptions:
        for entitlement in entitlements.get(subscription.plan_id, ()):
            if (entitlement.feature_id, subscription.customer_id) in touched:
                grants[(entitlement.feature_id, subscription.customer_id)].append(Source(entitlement, subscription))
    found = []
    for (feature_pk, customer_pk), sources in grants.items():
        combined = combine_sources(features[feature_pk], sources)
        if combined.primary is None or combined.usage_limit is None:
            continue
        customer = customers[customer_pk]
        window = reset_window(
            period=combined.primary.entitlement.usage_reset_period,
            subscription=combined.primary.subscription,
            customer=customer,
            at=now,
        )
        found.append(
            _Limit(
                features[feature_pk], customer, window.start, window.end, combined.usage_limit, combined.is_soft_limit
            )
        )
    return found


def _usage(plan: _Plan, *, parallel: bool) -> Generator[tuple[_Plan, dict[_UsageKey, Decimal | None]]]:
    """Each meter's part of the plan with its usage, as soon as that meter's reads are done: one statement per meter
    (per distinct window a customer needs on it). With `parallel`, `USAGE_READERS` reads run at once."""
    parts: dict[int | None, _Plan] = defaultdict(_Plan)
    for pair in plan.alerts:
        parts[pair.feature.meter_id].alerts.append(pair)
    for item in plan.limits:
        parts[item.feature.meter_id].limits.append(item)
    reads = [(meter_id, read) for meter_id, part in parts.items() for read in _reads(part)]
    # distinct counts first: they are a pass's slowest reads (the others add up one rollup row per day, a distinct
    # count merges every value of every day), and one started last ends the pass alone while the other reader idles
    reads.sort(key=lambda item: item[1][0].aggregation_type != AggregationType.COUNT_UNIQUE)
    unread = Counter(meter_id for meter_id, _ in reads)
    found: dict[int | None, dict[_UsageKey, Decimal | None]] = defaultdict(dict)
    for meter_id, (meter, windows), values in _read_all(reads, parallel=parallel):
        for external_id, (start, end) in windows.items():
            found[meter_id][(meter.id, external_id, start, end)] = values.get(external_id)
        unread[meter_id] -= 1
        if not unread[meter_id]:
            yield parts[meter_id], found.pop(meter_id)


_UsageKey = tuple[int, str, dt.datetime, dt.datetime]  # meter, customer, window start, window end
_Read = tuple[Meter, Mapping[str, tuple[dt.datetime, dt.datetime]]]


def _reads(part: _Plan) -> list[_Read]:
    """One meter's reads: customers grouped so that each read asks every customer in it for one window."""
    rounds: list[dict[str, tuple[dt.datetime, dt.datetime]]] = []
    meter = None
    items: list[_Pair | _Limit] = [*part.alerts, *part.limits]
    for item in items:
        meter = item.feature.meter
        window = (item.start, item.end)
        for windows in rounds:
            if windows.get(item.customer.external_id, window) == window:
                windows[item.customer.external_id] = window
                break
        else:
            rounds.append({item.customer.external_id: window})
    assert meter is not None
    return [(meter, windows) for windows in rounds]


def _reads_in_parallel() -> bool:
    """On PostgreSQL, outside a caller's transaction, reads run `USAGE_READERS` at once on connections of their
    own: the statements are independent (each meter is read in its own snapshot anyway), and a pass over thousands
    of customers is mostly their time. Inside a transaction (tests) other connections could not see its rows, so
    the reads run one after another there, as on SQLite."""
    return USAGE_READERS > 1 and connection.vendor == "postgresql" and not connection.in_atomic_block


def _read_all[K](
    reads: Sequence[tuple[K, _Read]], *, parallel: bool
) -> Iterator[tuple[K, _Read, dict[str, Decimal | None]]]:
    """Each read with its usage, in the order they finish. In parallel even a single read runs on a connection of
    its own: the pass's write transaction may already be open on this one."""
    if not parallel:
        for key, read in reads:
            yield key, read, _customer_windows_usage(meter=read[0], windows=read[1])
        return
    with ThreadPoolExecutor(max_workers=USAGE_READERS, thread_name_prefix="alerts-usage") as pool:
        running = {pool.submit(_read_on_own_connection, read): (key, read) for key, read in reads}
        try:
            for done in as_completed(running):
                yield *running[done], done.result()
        finally:
            for future in running:
                future.cancel()  # a failed pass stops reading (the running reads finish, then the pool closes)


def _read_on_own_connection(read: _Read) -> dict[str, Decimal | None]:
    meter, windows = read
    try:
        return _customer_windows_usage(meter=meter, windows=windows)
    finally:
        connections.close_all()  # this thread's connections only: Django's are per thread


def _customer_windows_usage(*, meter: Meter, windows: Mapping[str, tuple[dt.datetime, dt.datetime]]):
    return usage_for_customer_windows(meter=meter, windows=windows)


def _value(usage: Mapping, item: _Pair | _Limit) -> Decimal:
    meter = item.feature.meter
    assert meter is not None
    value = usage.get((meter.id, item.customer.external_id, item.start, item.end))
    return value if value is not None else Decimal(0)


# --- writes --------------------------------------------------------------------------------------------------


_Change = tuple[_Pair, str, str, Decimal, int]  # pair, from level, to level, usage, sequence


def _record(plan: _Plan, usage: Mapping, now: dt.datetime, report: EvaluationReport) -> set[tuple[int, str]]:
    """Write the changes of a pass in the caller's transaction; returns the (environment, customer) whose change
    another evaluator won (their marks stay, to be evaluated again)."""
    moment = _Moments()
    states = _current_states(plan.alerts, moment)
    evaluated_at = moment(now)
    rows: list[dict] = []
    changes: dict[tuple[int, int], _Change] = {}
    for pair in plan.alerts:
        used = _value(usage, pair)
        level = pair.rule.level(used)
        key = (pair.feature.id, pair.customer.pk)
        state_id, current, version = states.get(key, (None, AlertLevel.OK, 0))
        if level == current:
            continue
        changes[key] = (pair, current, level, used, version + 1)
        threshold = pair.rule.crossed(current, level)
        # one row serves the state's write and its log row: the statement writes the log row of each state it won
        rows.append(
            {
                "sid": state_id,
                "ver": version,
                "e": pair.customer.environment_id,
                "f": key[0],
                "c": key[1],
                "ps": moment(pair.start),
                "pe": moment(pair.end),
                "fl": current,
                "l": level,
                "cn": pair.rule.condition,
                "u": decimal_text(used),
                "th": "" if threshold is None else decimal_text(threshold),
                "t": evaluated_at,
            }
        )
    won = _states_write(rows) if rows else set()
    lost = {
        (changes[key][0].customer.environment_id, changes[key][0].customer.external_id)
        for key in changes
        if key not in won
    }
    recorded = [changes[key] for key in changes if key in won]
    reached = _limits_record(plan.limits, usage, now, LimitReached._meta.db_table, moment)
    report.changes += len(recorded)
    report.limits_reached += len(reached)
    report.outbox += _outbox(recorded, reached, now)
    return lost


_CHANGE_COLUMNS = {
    "sid": "bigint", "ver": "integer", "e": "bigint", "f": "bigint", "c": "bigint", "ps": "timestamptz",
    "pe": "timestamptz", "fl": "text", "l": "text", "cn": "text", "u": "text", "th": "text", "t": "timestamptz",
}  # fmt: skip


def _states_write(rows: list[dict]) -> set[tuple[int, int]]:
    """Insert the new states (`sid` null), compare-and-set the changed ones, and log each change whose state was
    written; returns the (feature, customer) written. PostgreSQL does it in one statement, SQLite in three."""
    state, log = AlertState._meta.db_table, AlertLogEntry._meta.db_table
    insert = (
        f"INSERT INTO {state} (environment_id, feature_id, customer_id, period_start, period_end, level, usage, "
        "version, updated_at) SELECT v.e, v.f, v.c, v.ps, v.pe, v.l, v.u, 1, v.t FROM {source} WHERE v.sid IS NULL "
        "ON CONFLICT (feature_id, customer_id, period_start) DO NOTHING RETURNING feature_id, customer_id"
    )
    update = (
        f"UPDATE {state} SET level = v.l, usage = v.u, version = v.ver + 1, updated_at = v.t FROM {{source}} "
        f"WHERE {state}.id = v.sid AND {state}.version = v.ver RETURNING {state}.feature_id, {state}.customer_id"
    )
    log_insert = (
        f"INSERT INTO {log} (environment_id, feature_id, customer_id, period_start, period_end, sequence, "
        "from_level, to_level, condition, usage, threshold, evaluated_at) "
        "SELECT v.e, v.f, v.c, v.ps, v.pe, v.ver + 1, v.fl, v.l, v.cn, v.u, v.th, v.t FROM {source}"
    )
    if connection.vendor == "postgresql":
        # the rows are parsed once, and the log rows never travel: data-modifying CTEs see each other's RETURNING
        source, params = _rows(_CHANGE_COLUMNS, rows)
        return _returning(
            f"WITH v AS MATERIALIZED (SELECT * FROM {source}), "
            f"added AS ({insert.format(source='v')}), changed AS ({update.format(source='v')}), "
            "won AS (SELECT * FROM added UNION ALL SELECT * FROM changed), "
            f"logged AS ({log_insert.format(source='v JOIN won ON won.feature_id = v.f AND won.customer_id = v.c')}) "
            "SELECT feature_id, customer_id FROM won",
            params,
        )
    won: set[tuple[int, int]] = set()
    for sql, some in ((insert, [r for r in rows if r["sid"] is None]), (update, [r for r in rows if r["sid"]])):
        if some:
            source, params = _rows(_CHANGE_COLUMNS, some)
            won |= _returning(sql.format(source=source), params)
    logged = [row for row in rows if (row["f"], row["c"]) in won]
    if logged:
        source, params = _rows(_CHANGE_COLUMNS, logged)
        _execute(log_insert.format(source=source), params)
    return won


def _limits_record(
    limits: list[_Limit], usage: Mapping, now: dt.datetime, table: str, moment: _Moments
) -> list[tuple[_Limit, Decimal]]:
    """Record every limit reached (`usage >= limit`) not yet recorded for its reset period; returns the new ones."""
    hits = {(item.feature.id, item.customer.pk): (item, _value(usage, item)) for item in limits}
    hits = {key: (item, used) for key, (item, used) in hits.items() if used >= item.limit}
    if not hits:
        return []
    rows = [
        {
            "e": item.customer.environment_id,
            "f": item.feature.id,
            "c": item.customer.pk,
            "ps": moment(item.start),
            "pe": moment(item.end),
            "u": decimal_text(used),
            "lim": decimal_text(item.limit),
            "soft": item.is_soft,
            "t": moment(now),
        }
        for item, used in hits.values()
    ]
    source, params = _rows(
        {"e": "bigint", "f": "bigint", "c": "bigint", "ps": "timestamptz", "pe": "timestamptz", "u": "text",
         "lim": "text", "soft": "boolean", "t": "timestamptz"}, rows,
    )  # fmt: skip
    new = _returning(
        f"INSERT INTO {table} (environment_id, feature_id, customer_id, period_start, period_end, usage, usage_limit, "
        f"is_soft_limit, evaluated_at) SELECT v.e, v.f, v.c, v.ps, v.pe, v.u, v.lim, v.soft, v.t FROM {source} "
        "WHERE true ON CONFLICT (feature_id, customer_id, period_start) DO NOTHING RETURNING feature_id, customer_id",
        params,
    )
    return [hits[key] for key in hits if key in new]


def _outbox(recorded: list[_Change], reached: list[tuple[_Limit, Decimal]], now: dt.datetime) -> int:
    """One outbox row per subscribed endpoint for every change and limit reached, in the caller's transaction.
    Payloads are built only where an endpoint is subscribed: a first pass may cross tens of thousands of thresholds
    at once in an installation that sends no webhooks."""
    environment_ids = {pair.customer.environment_id for pair, *_ in recorded}
    environment_ids |= {item.customer.environment_id for item, _ in reached}
    if not environment_ids:
        return 0
    endpoints = subscribers(environment_ids)
    payloads: dict[tuple[int, str], list[dict]] = defaultdict(list)
    evaluated_at = rfc3339(now)
    for pair, current, level, used, _sequence in recorded:
        key = (pair.customer.environment_id, FEATURE_ALERT)
        if key not in endpoints:
            continue
        threshold = pair.rule.crossed(current, level)
        payloads[key].append(
            {
                **_subject(pair.feature, pair.customer, rfc3339(pair.start), rfc3339(pair.end)),
                "from_level": str(current),
                "to_level": str(level),
                "condition": pair.rule.condition,
                "usage": decimal_text(used),
                "threshold": None if threshold is None else decimal_text(threshold),
                "evaluated_at": evaluated_at,
            }
        )
    for item, used in reached:
        key = (item.customer.environment_id, LIMIT_REACHED)
        if key not in endpoints:
            continue
        payloads[key].append(
            {
                **_subject(item.feature, item.customer, rfc3339(item.start), rfc3339(item.end)),
                "usage": decimal_text(used),
                "usage_limit": decimal_text(item.limit),
                "is_soft_limit": item.is_soft,
                "evaluated_at": evaluated_at,
            }
        )
    return sum(
        _publish(environment_id, event_type, endpoints[(environment_id, event_type)], rows)
        for (environment_id, event_type), rows in payloads.items()
    )


def _subject(feature: Feature, customer: _Customer, start: str, end: str) -> dict:
    return {
        "feature_id": feature.public_id,
        "feature_lookup_key": feature.lookup_key,
        "feature_name": feature.name,
        "customer_id": customer.public_id,
        "external_customer_id": customer.external_id,
        "period_start": start,
        "period_end": end,
    }


def _publish(environment_id: int, event_type: str, endpoint_ids: list[int], payloads: Sequence[dict]) -> int:
    """Outbox rows for each of `endpoint_ids` (subscribed to `event_type`), in the caller's transaction."""
    return publish_to(environment_id, event_type, endpoint_ids, payloads)


def _current_states(pairs: list[_Pair], moment: _Moments) -> dict[tuple[int, int], tuple[int, str, int]]:
    """{(feature pk, customer pk): (state id, level, version)} of the pairs' current periods, in one statement."""
    if not pairs:
        return {}
    source, params = _rows(
        {"f": "bigint", "c": "bigint", "ps": "timestamptz"},
        [{"f": p.feature.id, "c": p.customer.pk, "ps": moment(p.start)} for p in pairs],
    )
    sql = (
        f"SELECT s.id, s.feature_id, s.customer_id, s.level, s.version FROM {AlertState._meta.db_table} s "
        f"JOIN {source} ON s.feature_id = v.f AND s.customer_id = v.c AND s.period_start = v.ps"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {(f, c): (state_id, level, version) for state_id, f, c, level, version in cursor.fetchall()}


def _marks_delete(marks: list[tuple[int, int]]) -> None:
    """Delete the marks still at the version read: a mark touched since stays for the next pass."""
    if not marks:
        return
    source, params = _rows({"i": "bigint", "ver": "bigint"}, [{"i": i, "ver": ver} for i, ver in marks])
    table = UsageMark._meta.db_table
    if connection.vendor == "postgresql":
        # The marks table is a queue, so its statistics are usually those of a moment it was nearly empty; the
        # planner then loops over the marks once per row read (a 50,000-mark pass took minutes). A hash join is
        # right for any size. SET LOCAL ends with the pass's write transaction, which this statement closes.
        _execute("SET LOCAL enable_nestloop = off", [])
    _execute(
        f"DELETE FROM {table} WHERE id IN (SELECT m.id FROM {table} m JOIN {source} ON m.id = v.i "
        "AND m.version = v.ver)",
        params,
    )


# --- set-based SQL over one JSON parameter -------------------------------------------------------------------


def _rows(columns: dict[str, str], rows: list[dict]) -> tuple[str, list]:
    """A FROM item `v` whose rows come from one JSON parameter: any number of rows, one statement, one parameter
    (PostgreSQL types the columns with `columns`; SQLite reads them as stored)."""
    data = json.dumps(rows)
    if connection.vendor == "postgresql":
        # json, not jsonb: read once, the text need not be converted first (half the time at 50,000 rows)
        spec = ", ".join(f"{name} {kind}" for name, kind in columns.items())
        return f"json_to_recordset(%s::json) AS v({spec})", [data]
    picks = ", ".join(f"j.value ->> '{name}' AS {name}" for name in columns)
    return f"(SELECT {picks} FROM json_each(%s) AS j) AS v", [data]


class _Moments(dict):
    """Timestamps as the database stores them (SQLite compares the ORM's own text), each converted once: the
    customers of a pass share a few period bounds."""

    def __init__(self):
        super().__init__()
        self.postgresql = connection.vendor == "postgresql"
        self.adapt = connection.ops.adapt_datetimefield_value

    def __call__(self, value: dt.datetime) -> str:
        found = self.get(value)
        if found is None:
            found = self[value] = value.isoformat() if self.postgresql else str(self.adapt(value))
        return found


def _execute(sql: str, params: list) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _returning(sql: str, params: list) -> set[tuple[int, int]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {tuple(row) for row in cursor.fetchall()}
