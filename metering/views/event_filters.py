"""Filter forms of the event debugger and usage pages: parse query strings into selector arguments, never query."""

from __future__ import annotations

import datetime as dt

from django import forms
from django.utils import timezone

from flexmeter.forms import named_select
from metering.debugger.stream import STATUSES

STATUS_LABELS = {
    "processed": "Processed",
    "customer_not_found": "Customer not found",
    "unmatched": "Unmatched",
    "filtered_out": "Filtered out",
}
#: What each status means, for the badge's title and the status filter's help.
STATUS_DESCRIPTIONS = {
    "processed": "Counted by at least one meter, for a known customer.",
    "customer_not_found": "Counted by a meter, but no customer has this external id yet.",
    "unmatched": "Counted by no meter: no meter reads this name, or the event has no usable value.",
    "filtered_out": "Left out on purpose: every meter of this event name excludes it with a filter.",
}

# name → (label, how far back from now); "" is all time
RANGES = {
    "15m": ("Last 15 minutes", dt.timedelta(minutes=15)),
    "1h": ("Last hour", dt.timedelta(hours=1)),
    "24h": ("Last 24 hours", dt.timedelta(hours=24)),
    "7d": ("Last 7 days", dt.timedelta(days=7)),
    "30d": ("Last 30 days", dt.timedelta(days=30)),
}


class EventStreamFilterForm(forms.Form):
    """The stream's filters, all optional and all in the URL. Invalid values are reported, never a 500."""

    event_name = forms.CharField(required=False, max_length=255)
    external_customer_id = forms.CharField(required=False, max_length=255)
    source = forms.CharField(required=False, max_length=255)
    status = forms.ChoiceField(
        required=False,
        choices=[("", "Any status"), *[(s, STATUS_LABELS[s]) for s in STATUSES]],
        widget=named_select("Status"),
    )
    range = forms.ChoiceField(
        required=False,
        choices=[("", "All time"), *[(key, label) for key, (label, _) in RANGES.items()]],
        widget=named_select("Time range"),
    )
    start = forms.DateTimeField(required=False, input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"])
    end = forms.DateTimeField(required=False, input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"])
    cursor = forms.CharField(required=False)

    FILTER_KEYS = ("event_name", "external_customer_id", "source", "status", "range", "start", "end")

    def clean(self):
        data = super().clean()
        start, end = data.get("start"), data.get("end")
        if start and end and end <= start:
            self.add_error("end", "The end must be after the start.")
        return data

    def selector_kwargs(self, *, now: dt.datetime | None = None) -> dict:
        """Arguments for `event_stream_page`; times typed in the form are UTC."""
        data = self.cleaned_data
        start = _utc(data.get("start"))
        if data.get("range"):
            since = (now or timezone.now()) - RANGES[data["range"]][1]
            start = max(start, since) if start else since
        return {
            "event_name": data.get("event_name") or None,
            "external_customer_id": data.get("external_customer_id") or None,
            "source": data.get("source") or None,
            "status": data.get("status") or None,
            "start": start,
            "end": _utc(data.get("end")),
        }

    @property
    def is_filtered(self) -> bool:
        return any(self.data.get(key) for key in self.FILTER_KEYS)


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=dt.UTC) if timezone.is_naive(value) else value.astimezone(dt.UTC)


class UnmatchedFilterForm(forms.Form):
    range = forms.ChoiceField(
        required=False,
        choices=[("", "All time"), *[(key, label) for key, (label, _) in RANGES.items()]],
        widget=named_select("Time range"),
    )

    def since(self, *, now: dt.datetime | None = None) -> dt.datetime | None:
        key = self.cleaned_data.get("range") if self.is_valid() else ""
        return (now or timezone.now()) - RANGES[key][1] if key else None
