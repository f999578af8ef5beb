"""Catalog template tags (`{% load catalog_ui %}`): plain-words descriptions of meters and features, sample events,
`curl` snippets, and quantities with a feature's units (also used by the usage and debugger pages)."""

import json

from django import template
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from catalog.models import AggregationType, BucketSize, ResetUsage
from flexmeter.decimals import format_quantity, quantity_is_rounded

register = template.Library()

SAMPLE_CUSTOMER_ID = "customer_123"

OPERATOR_WORDS = {"in": "is", "not_in": "is not", "contains": "contains", "not_contains": "does not contain"}


def _quantity(meter) -> SafeString:
    if meter.aggregation_expression:
        return format_html("<code>{}</code>", meter.aggregation_expression)
    return format_html("<code>{}</code>", meter.aggregation_field or "?")


@register.filter
def aggregation_label(aggregation_type: str) -> str:
    if aggregation_type in AggregationType.values:
        return AggregationType(aggregation_type).label
    return aggregation_type


@register.filter
def aggregation_sentence(meter) -> SafeString:
    """One sentence saying what the meter computes, e.g. "Adds up `tokens` across matching `llm.request` events."."""
    if meter is None:
        return format_html("")
    event = format_html("<code>{}</code>", meter.event_name or "…")
    value = _quantity(meter)
    kind = meter.aggregation_type
    if kind == AggregationType.COUNT:
        text = format_html("Counts every matching {} event.", event)
    elif kind == AggregationType.SUM:
        text = format_html("Adds up {} across matching {} events.", value, event)
    elif kind == AggregationType.AVG:
        text = format_html("Averages {} across matching {} events.", value, event)
    elif kind == AggregationType.MIN:
        text = format_html("Takes the smallest {} of the matching {} events.", value, event)
    elif kind == AggregationType.MAX:
        text = format_html("Takes the largest {} of the matching {} events.", value, event)
    elif kind == AggregationType.COUNT_UNIQUE:
        text = format_html("Counts the distinct values of {} in matching {} events.", value, event)
    elif kind == AggregationType.LATEST:
        text = format_html("Takes {} from the most recent matching {} event.", value, event)
    elif kind == AggregationType.SUM_WITH_MULTIPLIER:
        text = format_html(
            "Adds up {} across matching {} events and multiplies the total by <strong>{}</strong>.",
            value,
            event,
            meter.multiplier or "?",
        )
    elif kind == AggregationType.WEIGHTED_SUM:
        text = format_html(
            "Treats {} of each matching {} event as a change to a level and averages that level over time.",
            value,
            event,
        )
    else:
        text = format_html("Aggregates {} events with {}.", event, kind)
    if meter.bucket_size:
        bucket = BucketSize(meter.bucket_size).label.lower()
        if kind == AggregationType.MAX:
            per_group = format_html(" per distinct <code>{}</code>", meter.group_by) if meter.group_by else ""
            text = format_html("{} Peaks are taken per {}{} and then added up.", text, bucket, per_group)
        else:
            text = format_html("{} Results are reported per {}.", text, bucket)
    return text


@register.filter
def reset_sentence(reset_usage: str) -> str:
    if reset_usage == ResetUsage.NEVER:
        return "Cumulative: usage keeps growing across billing periods and never resets."
    return "Periodic: usage starts again from zero at the beginning of every billing period."


@register.filter
def reset_label(reset_usage: str) -> str:
    return "Cumulative" if reset_usage == ResetUsage.NEVER else "Periodic"


@register.filter
def filter_sentence(item: dict) -> SafeString:
    """`region` is `eu` or `us`."""
    values = format_html_join(" or ", "<code>{}</code>", ((value,) for value in item.get("values", [])))
    words = OPERATOR_WORDS.get(item.get("operator") or "in", item.get("operator"))
    return format_html("<code>{}</code> {} {}", item.get("key", ""), words, values)


@register.filter
def operator_words(operator: str) -> str:
    return OPERATOR_WORDS.get(operator or "in", operator)


def sample_properties(meter) -> dict:
    """Properties an event needs to count for `meter`: the aggregated field, referenced properties, filter values."""
    properties: dict = {}
    if meter is None:
        return properties
    if meter.aggregation_expression:
        from catalog.expressions import ExpressionError, compile_expression

        try:
            for name in sorted(compile_expression(meter.aggregation_expression).properties):
                properties[name] = 10
        except ExpressionError:
            pass
    elif meter.aggregation_field and meter.aggregation_type != AggregationType.COUNT:
        sample = "user_42" if meter.aggregation_type == AggregationType.COUNT_UNIQUE else 42
        properties[meter.aggregation_field] = sample
    if meter.group_by:
        properties.setdefault(meter.group_by, "group-a")
    for item in meter.filters or []:
        if item.get("operator", "in") in {"in", "contains"} and item.get("values"):
            properties.setdefault(item["key"], item["values"][0])
    return properties


def sample_event(meter, customer: str = "") -> dict:
    """The smallest event that counts for `meter`, sent by `customer` (an existing customer's external id when the
    page knows one; a placeholder otherwise)."""
    return {
        "event_name": meter.event_name if meter else "",
        "external_customer_id": customer or SAMPLE_CUSTOMER_ID,
        "properties": sample_properties(meter),
    }


@register.filter
def sample_event_json(meter, customer: str = "") -> str:
    return json.dumps(sample_event(meter, customer), indent=2)


@register.simple_tag(takes_context=True)
def curl_command(context, meter, customer: str = "") -> str:
    """A copy-paste `curl` that sends the sample event to this server's API."""
    base = context["request"].build_absolute_uri("/").rstrip("/")
    body = json.dumps(sample_event(meter, customer), indent=2).replace("'", "'\\''")
    return (
        f"curl -X POST {base}/v1/events \\\n"
        f'  -H "x-api-key: $FLEXMETER_API_KEY" \\\n'
        f'  -H "content-type: application/json" \\\n'
        f"  -d '{body}'"
    )


@register.simple_tag
def quantity(value, feature=None, exact=False) -> str:
    """A number with the feature's units for reading: `1 credit`, `5 credits` (SPEC §2.2), rounded by the rule
    of `flexmeter.decimals.readable_decimal`; a rounded number carries its exact text one hover away (`title`).
    `exact=True` for settings a person typed (thresholds): every digit, as entered."""
    units = {
        "unit_singular": getattr(feature, "unit_singular", "") or "",
        "unit_plural": getattr(feature, "unit_plural", "") or "",
    }
    if exact or not quantity_is_rounded(value):
        return format_quantity(value, **units)
    text = format_quantity(value, readable=True, **units)
    exact = format_quantity(value, **units)
    return format_html('<span class="qty-rounded" title="Exactly {}" data-exact="{}">{}</span>', exact, exact, text)


@register.filter
def alert_levels(alert_settings: dict) -> list[dict]:
    """`[{"level": "warning", "threshold": "800", "condition": "above"}, …]` from the most to the least severe."""
    levels = []
    for level in ("critical", "warning", "info"):
        item = (alert_settings or {}).get(level)
        if isinstance(item, dict):
            levels.append({"level": level, **item})
    return levels
