"""Dashboard pages of the event debugger (SPEC §7, §8): the live stream, one event explained, "test an event",
and unmatched event names. Views parse input, call one selector or service, and render."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET
from django_htmx.http import HttpResponseClientRedirect, reswap, retarget

from flexmeter.dashboard import dashboard_view, render_page
from flexmeter.errors import ValidationFailed
from metering import exactjson
from metering.api.schemas import event_to_dict, timestamp_out
from metering.debugger.explain import DebugReport, NearMiss, event_debug_report
from metering.debugger.stream import event_stream_page, unmatched_event_names, unmatched_groups
from metering.ingest.validation import event_clean
from metering.ingest.writer import events_store
from metering.models import Event
from metering.selectors import event_lookup
from metering.views.event_filters import STATUS_LABELS, EventStreamFilterForm, UnmatchedFilterForm

STREAM_TEMPLATE = "metering/events/stream.html"
SAMPLE_EVENT = {
    "event_name": "api.calls",
    "external_customer_id": "acme",
    "properties": {"path": "/v1/search", "tokens": 120},
}


def pretty_json(value: Any) -> str:
    """Indented JSON whose numbers keep every digit (Decimals are written as they are, never as floats)."""
    marker = "\u0000num:"

    def mark(item):
        if isinstance(item, Decimal):
            return f"{marker}{item}\u0000"
        if isinstance(item, dict):
            return {key: mark(inner) for key, inner in item.items()}
        if isinstance(item, list):
            return [mark(inner) for inner in item]
        return item

    text = json.dumps(mark(value), indent=2, ensure_ascii=False)
    return text.replace('"\\u0000num:', "").replace('\\u0000"', "")


def near_miss_hints(misses: list[NearMiss]) -> list[dict]:
    """Word near misses the way a person would say them ("did you mean `api.calls`?"), one hint per suggestion
    with every meter it concerns."""
    hints: dict[tuple, dict] = {}
    for miss in misses:
        hint = hints.setdefault(
            (miss.kind, miss.expected, miss.actual),
            {"kind": miss.kind, "expected": miss.expected, "actual": miss.actual, "meters": []},
        )
        hint["meters"].append({"id": miss.meter_id, "name": miss.meter_name})
    for hint in hints.values():
        if hint["kind"] == "property_key":
            same_letters = hint["expected"].lower() == hint["actual"].lower()
            hint["how"] = "only by case" if same_letters else "only by case or separators"
    return list(hints.values())


def _report_context(report: DebugReport) -> dict:
    return {
        "report": report,
        "status_label": STATUS_LABELS[report.shown_status],
        "hints": near_miss_hints(report.near_misses),
        "matched_count": sum(1 for meter in report.meters if meter.matched),
    }


# --- the stream -------------------------------------------------------------------------------------------------


@require_GET
@dashboard_view
def event_stream(request: HttpRequest) -> HttpResponse:
    """Newest events first with their status. htmx asks for the table (filters), older rows, or newer rows."""
    form = EventStreamFilterForm(request.GET)
    newer_than = request.GET.get("newer_than") or None
    if not form.is_valid():
        context = {"form": form, "page": None, "status_labels": STATUS_LABELS}
        return render_page(request, STREAM_TEMPLATE, context, partial="event-stream", status=400)
    try:
        page = event_stream_page(
            environment=request.environment,
            cursor=None if newer_than else form.cleaned_data.get("cursor") or None,
            newer_than=newer_than,
            **form.selector_kwargs(),
        )
    except ValidationFailed as exc:
        for key, message in exc.details.items():
            form.add_error(None, f"{key}: {message}")
        context = {"form": form, "page": None, "status_labels": STATUS_LABELS}
        return render_page(request, STREAM_TEMPLATE, context, partial="event-stream", status=400)
    context = {"form": form, "page": page, "status_labels": STATUS_LABELS, "is_filtered": form.is_filtered}
    if request.htmx and newer_than:
        if not page.rows:
            return HttpResponse(status=204)
        if page.has_more:  # more new events than a page: show the newest page afresh
            response = render(request, f"{STREAM_TEMPLATE}#event-stream", context)
            return reswap(retarget(response, "#event-stream"), "outerHTML")
        return render(request, f"{STREAM_TEMPLATE}#stream-new-rows", context)
    if request.htmx and form.cleaned_data.get("cursor") and not request.htmx.boosted:
        return render(request, f"{STREAM_TEMPLATE}#stream-more", {**context, "more_only": True})
    return render_page(request, STREAM_TEMPLATE, context, partial="event-stream")


# --- one event --------------------------------------------------------------------------------------------------


@require_GET
@dashboard_view
def event_detail(request: HttpRequest) -> HttpResponse:
    """The debug report of one stored event (`?id=<event_id>`), its fields and its raw JSON."""
    event_id = request.GET.get("id", "")
    event = event_lookup(environment=request.environment, event_id=event_id)
    if event is None:
        raise Http404("No such event in this environment")
    report = event_debug_report(environment=request.environment, event=event)
    wire = event_to_dict(event, report.customer_lookup.customer_id, environment_id=request.environment.public_id)
    context = {"event": event, "raw_json": pretty_json(wire), **_report_context(report)}
    return render(request, "metering/events/detail.html", context)


# --- test an event ----------------------------------------------------------------------------------------------


def _editable_json(event: Event) -> str:
    """A stored event as the JSON a client would send (its event_id kept: sending it replaces the event)."""
    return pretty_json(
        {
            "event_id": event.event_id,
            "event_name": event.event_name,
            "external_customer_id": event.external_customer_id,
            "timestamp": timestamp_out(event.timestamp),
            "source": event.source,
            "properties": event.properties,
        }
    )


def _parse_candidate(text: str):
    """JSON text → validated EventInput; ValidationFailed with a readable message for anything wrong."""
    try:
        raw = exactjson.loads(text)
    except ValueError as exc:
        line, column = getattr(exc, "lineno", None), getattr(exc, "colno", None)
        where = f" (line {line}, column {column})" if line else ""
        raise ValidationFailed(
            "This is not valid JSON", details={"json": f"{getattr(exc, 'msg', str(exc))}{where}"}
        ) from None
    return event_clean(raw)


@dashboard_view
def event_test(request: HttpRequest) -> HttpResponse:
    """Paste or edit an event and see the §7 report without storing it; "Send event" stores it for real."""
    source_event = None
    if request.method == "POST":
        text = request.POST.get("event_json", "")
    else:
        source_id = request.GET.get("from", "")
        source_event = event_lookup(environment=request.environment, event_id=source_id)
        text = _editable_json(source_event) if source_event else pretty_json(SAMPLE_EVENT)
    context: dict[str, Any] = {"event_json": text, "source_event": source_event, "errors": None}
    status = 200
    if request.method == "POST" or source_event is not None:
        try:
            candidate = _parse_candidate(text)
        except ValidationFailed as exc:
            context["errors"] = exc.details or {"": exc.message}
            status = 422
        else:
            if request.POST.get("action") == "send":
                result = events_store(environment=request.environment, events=[candidate])
                verb = "replaced the stored event" if result.duplicates else "stored"
                messages.success(request, f"Event {candidate.event_id} {verb}.")
                url = f"{reverse('metering:event_detail')}?{urlencode({'id': candidate.event_id})}"
                return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
            report = event_debug_report(environment=request.environment, event=candidate)
            context.update(_report_context(report))
            context["candidate"] = candidate
    return render_page(request, "metering/events/test.html", context, partial="test-result", status=status)


# --- unmatched names --------------------------------------------------------------------------------------------


@require_GET
@dashboard_view
def event_unmatched(request: HttpRequest) -> HttpResponse:
    """Event names that nothing meters, with counts and last seen: what to create a feature for, or to fix."""
    form = UnmatchedFilterForm(request.GET)
    names = unmatched_event_names(environment=request.environment, start=form.since())
    context = {
        "form": form,
        "names": names,
        "groups": unmatched_groups(names),
        "total": sum(name.count for name in names),
        "event_names": len({name.event_name for name in names}),
    }
    return render_page(request, "metering/events/unmatched.html", context, partial="unmatched-results")
