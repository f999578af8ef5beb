"""Dashboard forms for plans, entitlements, subscriptions and the access check. Forms only shape input: the rules
in `entitlements.rules` (through the services) decide, and their errors are mapped back onto these fields."""

from __future__ import annotations

import json

from django import forms

from catalog.models import Feature, FeatureType
from entitlements.models import Plan, PlanStatus, ResetPeriod

RESET_LABELS = {
    ResetPeriod.BILLING_PERIOD: "Customer's billing period",
    ResetPeriod.DAILY: "Daily",
    ResetPeriod.WEEKLY: "Weekly",
    ResetPeriod.MONTHLY: "Monthly",
    ResetPeriod.QUARTERLY: "Quarterly",
    ResetPeriod.HALF_YEARLY: "Every six months",
    ResetPeriod.ANNUAL: "Yearly",
    ResetPeriod.NEVER: "Never (since the subscription started)",
}


class PlanForm(forms.Form):
    name = forms.CharField(
        required=False, widget=forms.TextInput(attrs={"placeholder": "e.g. Pro", "autocomplete": "off"})
    )
    lookup_key = forms.CharField(
        required=False,
        widget=forms.TextInput(attrs={"placeholder": "derived from the name", "autocomplete": "off", "class": "mono"}),
    )
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))

    error_paths = {"name": "name", "lookup_key": "lookup_key", "description": "description"}

    @classmethod
    def initial_for(cls, plan: Plan) -> dict:
        return {"name": plan.name, "lookup_key": plan.lookup_key, "description": plan.description}

    def as_data(self) -> dict:
        return {name: self.cleaned_data.get(name) or None for name in ("name", "lookup_key", "description")}


class EntitlementForm(forms.Form):
    feature = forms.ChoiceField(required=False)
    is_enabled = forms.BooleanField(required=False, initial=True)
    usage_limit = forms.CharField(
        required=False, widget=forms.TextInput(attrs={"placeholder": "empty = unlimited", "inputmode": "decimal"})
    )
    usage_reset_period = forms.ChoiceField(
        required=False, choices=[(value, RESET_LABELS[value]) for value in ResetPeriod.values], initial="MONTHLY"
    )
    is_soft_limit = forms.BooleanField(required=False)
    static_value = forms.CharField(required=False, widget=forms.TextInput(attrs={"placeholder": "e.g. 5 seats"}))
    config_value = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 2, "class": "mono", "placeholder": '{"max_projects": 10}'})
    )

    error_paths = {
        "feature_id": "feature",
        "feature_type": "feature",
        "is_enabled": "is_enabled",
        "usage_limit": "usage_limit",
        "usage_reset_period": "usage_reset_period",
        "is_soft_limit": "is_soft_limit",
        "static_value": "static_value",
        "config_value": "config_value",
    }

    def __init__(self, *args, features: list[Feature] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        if features is None:
            del self.fields["feature"]
        else:
            self.fields["feature"].choices = [("", "Choose a feature…")] + [
                (feature.public_id, f"{feature.name} ({feature.get_type_display().lower()})") for feature in features
            ]

    @classmethod
    def initial_for(cls, entitlement) -> dict:
        return {
            "is_enabled": entitlement.is_enabled,
            "usage_limit": entitlement.usage_limit,
            "usage_reset_period": entitlement.usage_reset_period,
            "is_soft_limit": entitlement.is_soft_limit,
            "static_value": entitlement.static_value,
            "config_value": json.dumps(entitlement.config_value) if entitlement.config_value is not None else "",
        }

    def as_data(self, *, feature_type: str | None) -> dict:
        """The API-shaped settings for `feature_type` (a form shows every field; only the type's own are sent)."""
        data = self.cleaned_data
        result: dict = {"is_enabled": bool(data.get("is_enabled"))}
        if "feature" in self.fields:
            result["feature_id"] = data.get("feature") or None
        if feature_type == FeatureType.METERED:
            result["usage_limit"] = data.get("usage_limit") or None
            result["usage_reset_period"] = data.get("usage_reset_period") or None
            result["is_soft_limit"] = bool(data.get("is_soft_limit"))
        elif feature_type == FeatureType.STATIC:
            result["static_value"] = data.get("static_value") or ""
        elif feature_type == FeatureType.CONFIG:
            text = (data.get("config_value") or "").strip()
            try:
                result["config_value"] = json.loads(text) if text else {}
            except ValueError:
                result["config_value"] = text  # not JSON: the rule reports it
        return result


class SubscribeForm(forms.Form):
    plan = forms.ChoiceField(required=False)

    def __init__(self, *args, plans: list[Plan], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["plan"].choices = [("", "Choose a plan…")] + [
            (plan.public_id, plan.name) for plan in plans if plan.status == PlanStatus.PUBLISHED
        ]


class AccessCheckForm(forms.Form):
    feature = forms.CharField(
        required=False,
        widget=forms.TextInput(
            attrs={"placeholder": "feature id or lookup key", "autocomplete": "off", "class": "mono"}
        ),
    )
