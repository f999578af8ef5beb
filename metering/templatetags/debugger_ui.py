"""Template helpers of the event debugger and usage pages: status badges and stream rows.

A stream row is built here with `format_html` rather than an included template: the stream renders 50 of them on
every refresh, and an include per row costs more than the database query behind the page.
"""

from functools import cache
from urllib.parse import quote

from django import template
from django.template.defaultfilters import date as date_filter
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import Truncator

from metering.views.event_filters import STATUS_DESCRIPTIONS, STATUS_LABELS

register = template.Library()


@register.simple_tag
def status_badge(status: str) -> SafeString:
    """The status as a coloured badge: processed, customer not found, unmatched (broken) or filtered out."""
    return format_html(
        '<span class="badge badge-status-{}" data-status="{}" title="{}"><span class="dot"></span>{}</span>',
        status,
        status,
        STATUS_DESCRIPTIONS.get(status, ""),
        STATUS_LABELS.get(status, status),
    )


@cache
def _url(name: str) -> str:
    return reverse(name)


def _short(text: str, length: int) -> str:
    return Truncator(text).chars(length)


@register.simple_tag
def stream_row(row, fresh: bool = False) -> SafeString:
    """One `<tr>` of the event stream: time, event name and id, customer (linked when known), properties, status."""
    event = row.event
    detail = f"{_url('metering:event_detail')}?id={quote(event.event_id, safe='')}"
    customer_text = _short(event.external_customer_id, 28)
    if row.customer_id:
        url = reverse("metering:customer_detail", args=[row.customer_id])
        customer = format_html('<a class="mono" href="{}">{}</a>', url, customer_text)
    else:
        customer = format_html('<span class="mono">{}</span>', customer_text)
    source = format_html('<span class="cell-sub">{}</span>', _short(event.source, 28)) if event.source else ""
    preview = row.preview
    return format_html(
        '<tr{} data-event-id="{}">'
        '<td class="col-time nowrap">{} <span class="time">{}</span></td>'
        '<td class="col-event"><a class="cell-title mono" href="{}">{}</a><span class="cell-sub">{}</span></td>'
        '<td class="col-customer">{}{}</td>'
        '<td class="col-props"><span class="props-preview" title="{}">{}</span></td>'
        '<td class="col-status">{}</td></tr>',
        mark_safe(' class="row-new"') if fresh else "",
        event.event_id,
        date_filter(event.timestamp, "M j"),
        date_filter(event.timestamp, "H:i:s"),
        detail,
        event.event_name,
        _short(event.event_id, 34),
        customer,
        source,
        preview,
        preview or "—",
        status_badge(row.status),
    )
