"""Template helpers for plans and access: the customer panel (plans, usage-versus-limit bars, access state)."""

from decimal import Decimal

from django import template

from entitlements.forms import RESET_LABELS, AccessCheckForm, SubscribeForm
from entitlements.models import PlanStatus
from entitlements.selectors import customer_entitlements, plan_list

register = template.Library()


@register.inclusion_tag("entitlements/partials/customer_panel.html", takes_context=True)
def customer_access_panel(context, customer):
    """Plans, per-feature access and usage bars of a customer, plus the subscribe and check-access forms."""
    result = customer_entitlements(customer=customer)
    plans = list(plan_list(environment=customer.environment, status=PlanStatus.PUBLISHED))
    return {
        "customer": customer,
        "result": result,
        "subscribe_form": SubscribeForm(plans=plans),
        "check_form": AccessCheckForm(),
        "csrf_token": context.get("csrf_token"),
        "request": context.get("request"),
    }


@register.filter
def usage_percent(answer) -> int:
    """How full the bar is: usage as a percentage of the limit, capped at 100 (0 without a limit)."""
    limit = answer.combined.usage_limit if answer.combined else None
    usage = answer.access.usage or Decimal(0)
    if limit is None:
        return 0
    if limit == 0:
        return 100
    return int(min(Decimal(100), usage * 100 / limit))


@register.filter
def reset_period_label(value: str | None) -> str:
    return RESET_LABELS.get(value, value or "")
