"""Template hooks of the alerts panels: one line in a usage page includes a panel that reads its own data."""

from django import template

from alerts.selectors import customer_alerts, environment_alarms, feature_alerts

register = template.Library()

LEVEL_LABELS = {"ok": "OK", "info": "Info", "warning": "Warning", "critical": "Critical"}


@register.inclusion_tag("alerts/partials/feature_alerts.html")
def feature_alerts_panel(feature):
    """Thresholds, customers per level in their current period, the most severe ones and the latest changes."""
    return {"alerts": feature_alerts(feature=feature)}


@register.inclusion_tag("alerts/partials/customer_alerts.html")
def customer_alerts_panel(customer, usage=None):
    """The customer's level per alerting feature with a usage-versus-thresholds bar (with `usage`, the page's
    `CustomerUsage`, for its period), then the alert and limit timeline."""
    feature_usage = [(row.feature, row.value) for row in usage.features] if usage is not None else None
    period_start = usage.period_start if usage is not None else None
    return {
        "customer": customer,
        "alerts": customer_alerts(customer=customer, period_start=period_start, feature_usage=feature_usage),
        "with_usage": usage is not None,
    }


@register.inclusion_tag("alerts/partials/overview_alarms.html")
def overview_alarms_panel(environment):
    """The overview's "in alarm" card: customers per level, the most severe states and the plan limits reached."""
    return {"alarms": environment_alarms(environment=environment)}


@register.inclusion_tag("alerts/partials/level_badge.html")
def alert_badge(level):
    return {"level": level, "label": LEVEL_LABELS.get(level, level)}


@register.filter
def level_label(level) -> str:
    return LEVEL_LABELS.get(level, level)
