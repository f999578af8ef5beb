"""Template helpers of the event debugger and usage pages: status badges."""

from django import template
from django.utils.html import format_html

from metering.filtersets_events import STATUS_LABELS

register = template.Library()


@register.simple_tag
def status_badge(status: str) -> str:
    """The §7 status as a coloured badge: processed, unmatched, customer not found."""
    return format_html(
        '<span class="badge badge-status-{}" data-status="{}"><span class="dot"></span>{}</span>',
        status,
        status,
        STATUS_LABELS.get(status, status),
    )
