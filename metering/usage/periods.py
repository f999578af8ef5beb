"""Time arithmetic of usage: billing periods (SPEC §5.4) and bucket/window alignment (SPEC §5.2, §5.3).

Buckets are computed on local wall-clock time of the requested time zone. The database maps each event to the
local start of its bucket (PostgreSQL with date_trunc/date_bin, SQLite with `bucket_start_local` below); turning
that local start back into an instant always happens here, in Python, so both databases report the same instants.
"""

from __future__ import annotations

import calendar
import datetime as dt
import functools
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flexmeter.errors import ValidationFailed

UTC = dt.UTC

# bucket name → fixed step in minutes (aligned on local midnight of 2001-01-01, a Monday), or a calendar unit
FIXED_STEPS = {"MINUTE": 1, "15MIN": 15, "30MIN": 30, "HOUR": 60, "3HOUR": 180, "6HOUR": 360, "12HOUR": 720}
CALENDAR_UNITS = ("DAY", "WEEK", "MONTH")
BUCKET_SIZES = (*FIXED_STEPS, *CALENDAR_UNITS)
BIN_ORIGIN = dt.datetime(2001, 1, 1)
# Usage is computed for instants in these years (UTC). Python's datetimes end at years 1 and 9999, and a window is
# widened to whole buckets, months and local time zones (up to a month and a day on either side), so a year of
# margin at each end keeps every step of a usage query inside them.
USAGE_TIME_MIN = dt.datetime(2, 1, 1, tzinfo=UTC)
USAGE_TIME_MAX = dt.datetime(9999, 1, 1, tzinfo=UTC)
# IANA names are at most ~30 characters; anything far longer is not a zone (and would not be a valid file name).
MAX_TIMEZONE_LENGTH = 64


def resolve_timezone(name: str | None, *, path: str = "timezone") -> ZoneInfo:
    """An IANA zone; an unknown name is a validation error, never a silent fallback to UTC."""
    if not name:
        return ZoneInfo("UTC")
    if len(name) > MAX_TIMEZONE_LENGTH:
        raise ValidationFailed(details={path: f"Unknown time zone (at most {MAX_TIMEZONE_LENGTH} characters)"})
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValidationFailed(details={path: f"Unknown time zone '{name}'"}) from None


def usage_time_problem(value: dt.datetime) -> str | None:
    """Why usage cannot be computed at `value` (None when it can): it must be aware and lie in years 0002–9998 UTC."""
    if value.tzinfo is None:
        return "must carry a time zone offset"
    try:
        instant = value.astimezone(UTC)
    except OverflowError:
        instant = None
    if instant is None or not USAGE_TIME_MIN <= instant <= USAGE_TIME_MAX:
        return "must lie between 0002-01-01T00:00:00Z and 9999-01-01T00:00:00Z"
    return None


def add_months(moment: dt.datetime, months: int, *, day: int | None = None) -> dt.datetime:
    """Same day-of-month (or `day`) `months` later; a day the month lacks clamps to its last day (Jan 31 → Feb 28)."""
    index = moment.year * 12 + (moment.month - 1) + months
    year, month = divmod(index, 12)
    month += 1
    wanted = day if day is not None else moment.day
    return moment.replace(year=year, month=month, day=min(wanted, calendar.monthrange(year, month)[1]))


_PERIOD_MONTHS = {"MONTHLY": 1, "QUARTERLY": 3, "ANNUAL": 12}
_PERIOD_DAYS = {"DAILY": 1, "WEEKLY": 7}


def billing_period_at(*, anchor: dt.datetime, period: str, at: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """The billing period `[start, end)` containing `at` for a customer anchored at `anchor` (computed in UTC).

    Monthly-based periods start on the anchor's day-of-month and time, clamped to short months, and always
    count from the anchor (Jan 31 → Feb 28 → Mar 31), so a short month never shifts later periods.
    """
    anchor = anchor.astimezone(UTC)
    at = at.astimezone(UTC)
    if period in _PERIOD_DAYS:
        step = dt.timedelta(days=_PERIOD_DAYS[period])
        k = (at - anchor) // step
        start = anchor + k * step
        return start, start + step
    if period not in _PERIOD_MONTHS:
        raise ValidationFailed(details={"billing_period": f"Unknown billing period '{period}'"})
    months = _PERIOD_MONTHS[period]
    k = ((at.year - anchor.year) * 12 + (at.month - anchor.month)) // months
    start = add_months(anchor, k * months)
    while start > at:
        k -= 1
        start = add_months(anchor, k * months)
    end = add_months(anchor, (k + 1) * months)
    while end <= at:
        k += 1
        start, end = end, add_months(anchor, (k + 1) * months)
    return start, end


@dataclass(frozen=True)
class MonthAnchor:
    """Where anchored month buckets start, in local time: day-of-month and time of day."""

    day: int
    time: dt.time

    @classmethod
    def from_anchor(cls, anchor: dt.datetime | None, zone: ZoneInfo) -> MonthAnchor | None:
        if anchor is None:
            return None
        local = anchor.astimezone(zone)
        return cls(day=local.day, time=local.time().replace(tzinfo=None))

    @property
    def time_of_day(self) -> dt.timedelta:
        t = self.time
        return dt.timedelta(hours=t.hour, minutes=t.minute, seconds=t.second, microseconds=t.microsecond)


def _anchored_month_start(year: int, month: int, anchor: MonthAnchor) -> dt.datetime:
    day = min(anchor.day, calendar.monthrange(year, month)[1])
    return dt.datetime.combine(dt.date(year, month, day), anchor.time)


def bucket_start_local(local: dt.datetime, size: str, anchor: MonthAnchor | None = None) -> dt.datetime:
    """Local (naive) start of the bucket holding the local time `local`. Weeks start on Monday."""
    if size in FIXED_STEPS:
        step = dt.timedelta(minutes=FIXED_STEPS[size])
        return BIN_ORIGIN + ((local - BIN_ORIGIN) // step) * step
    if size == "DAY":
        return dt.datetime.combine(local.date(), dt.time())
    if size == "WEEK":
        return dt.datetime.combine(local.date() - dt.timedelta(days=local.weekday()), dt.time())
    if size == "MONTH":
        if anchor is None:
            return dt.datetime(local.year, local.month, 1)
        start = _anchored_month_start(local.year, local.month, anchor)
        if local >= start:
            return start
        previous = add_months(dt.datetime(local.year, local.month, 1), -1)
        return _anchored_month_start(previous.year, previous.month, anchor)
    raise ValueError(f"unknown bucket size {size!r}")


def buckets_nest(bucket: str, window: str, anchor: MonthAnchor | None = None) -> bool:
    """Whether every bucket of size `bucket` lies inside one window of size `window` (local wall-clock grids). Fixed
    steps count from BIN_ORIGIN, a Monday midnight, and each divides a day: they nest in days, weeks and months and
    in any fixed step they divide; days nest in weeks and months. An anchored month begins at the anchor's time of
    day, which may cut any smaller bucket."""
    if bucket == window:
        return True
    if window == "MONTH" and anchor is not None:
        return False
    if bucket in FIXED_STEPS:
        return window in CALENDAR_UNITS or (window in FIXED_STEPS and FIXED_STEPS[window] % FIXED_STEPS[bucket] == 0)
    return bucket == "DAY" and window in ("WEEK", "MONTH")


def to_local(moment: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    return moment.astimezone(zone).replace(tzinfo=None)


# Remembered: every answer in windows converts each window's start, and the answers of one period (every customer's
# month in hourly windows) convert the same starts; a lookup costs ~0.1 µs of the conversion's ~1.5.
@functools.lru_cache(maxsize=1 << 14)
def from_local(local: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    """Instant of a local wall-clock time (naive: an aware one would share a remembered answer with any equal
    instant). A time repeated by a DST change maps to its first occurrence; a time skipped by one is read with the
    offset in force before the change (zoneinfo's fold=0)."""
    return local.replace(tzinfo=zone, fold=0).astimezone(UTC)


def next_bucket_start_local(start: dt.datetime, size: str, anchor: MonthAnchor | None = None) -> dt.datetime:
    """Local start of the bucket following the one that starts at `start`."""
    if size in FIXED_STEPS:
        return start + dt.timedelta(minutes=FIXED_STEPS[size])
    if size == "DAY":
        return start + dt.timedelta(days=1)
    if size == "WEEK":
        return start + dt.timedelta(days=7)
    following = add_months(dt.datetime(start.year, start.month, 1), 1)
    if anchor is None:
        return following
    candidate = _anchored_month_start(start.year, start.month, anchor)
    return candidate if candidate > start else _anchored_month_start(following.year, following.month, anchor)


def bucket_starts(
    *, start: dt.datetime, end: dt.datetime, size: str, zone: ZoneInfo | None = None, anchor: MonthAnchor | None = None
) -> list[dt.datetime]:
    """Start (UTC) of every bucket of `size` in `zone` that overlaps `[start, end)`, the same buckets the engine
    reports windows for."""
    zone = zone or ZoneInfo("UTC")
    starts = []
    local = bucket_start_local(to_local(start, zone), size, anchor)
    while (moment := from_local(local, zone)) < end:
        starts.append(moment)
        local = next_bucket_start_local(local, size, anchor)
    return starts
