"""Django admin for plans, entitlements and subscriptions.

Forms validate through `entitlements.rules` (the API's messages, on the matching field) and saves go through
`entitlements.services`, so admin cannot create what the API would reject. A subscription's customer, plan and
start are fixed once created; plans are archived with a list action rather than deleted.

Metadata (of plans and subscriptions) is rows of key and value inputs, the same field catalog admin uses for a
feature's metadata (`catalog.admin_fields.MetadataRowsField`), never a JSON text box.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest
from django.utils import timezone

from catalog.admin import ServiceErrorsMixin, add_rule_errors
from catalog.admin_fields import MetadataRowsField
from entitlements import rules, services
from entitlements.models import Entitlement, Plan, Subscription
from flexmeter.errors import ValidationFailed


class PlanAdminForm(forms.ModelForm):
    metadata = MetadataRowsField()

    class Meta:
        model = Plan
        fields = ("environment", "name", "lookup_key", "description", "display_order", "metadata")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["lookup_key"].required = False

    def plan_data(self) -> dict[str, Any]:
        data = {**self.cleaned_data}
        data.pop("environment", None)
        return data

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if not self.errors:
            try:
                rules.plan_clean(self.plan_data())
            except ValidationFailed as exc:
                add_rule_errors(self, exc, {})
        return cleaned

    def validate_unique(self) -> None:
        """Uniqueness is the service's 409 (shown as a message), not a second copy of the rule here."""


@admin.register(Plan)
class PlanAdmin(ServiceErrorsMixin, admin.ModelAdmin):
    form = PlanAdminForm
    list_display = ("name", "lookup_key", "status", "environment", "public_id")
    list_filter = ("environment", "status")
    search_fields = ("name", "lookup_key", "public_id")
    list_select_related = ("environment",)
    readonly_fields = ("public_id", "status", "created_at", "updated_at")
    actions = ("archive_plans",)

    def get_readonly_fields(self, request: HttpRequest, obj: Plan | None = None):
        return (*self.readonly_fields, "environment") if obj is not None else self.readonly_fields

    def has_delete_permission(self, request: HttpRequest, obj: Plan | None = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Plan, form: PlanAdminForm, change: bool) -> None:
        if change:
            services.plan_update(plan=Plan.objects.get(pk=obj.pk), data=form.plan_data())
        else:
            obj.pk = services.plan_create(environment=obj.environment, data=form.plan_data()).pk
        obj.refresh_from_db()

    @admin.action(description="Archive selected plans (current subscriptions keep them)")
    def archive_plans(self, request: HttpRequest, queryset) -> None:
        for plan in queryset:
            services.plan_archive(plan=plan)
        self.message_user(request, f"Archived {queryset.count()} plan(s).", messages.SUCCESS)


class EntitlementAdminForm(forms.ModelForm):
    class Meta:
        model = Entitlement
        fields = (
            "plan",
            "feature",
            "is_enabled",
            "usage_limit",
            "usage_reset_period",
            "is_soft_limit",
            "static_value",
            "config_value",
        )

    def settings_data(self) -> dict[str, Any]:
        data = {**self.cleaned_data}
        data.pop("plan", None)
        data.pop("feature", None)
        return data

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if self.errors:
            return cleaned
        plan = cleaned.get("plan") or getattr(self.instance, "plan", None)
        feature = cleaned.get("feature") or getattr(self.instance, "feature", None)
        if plan is not None and feature is not None and plan.environment_id != feature.environment_id:
            self.add_error("feature", "must belong to the plan's environment")
            return cleaned
        if feature is not None:
            try:
                rules.entitlement_clean(self.settings_data(), feature=feature)
            except ValidationFailed as exc:
                add_rule_errors(self, exc, {})
        return cleaned

    def validate_unique(self) -> None:
        """One entitlement per plan and feature is the service's 409 (shown as a message)."""


@admin.register(Entitlement)
class EntitlementAdmin(ServiceErrorsMixin, admin.ModelAdmin):
    form = EntitlementAdminForm
    list_display = ("feature", "plan", "is_enabled", "usage_limit", "usage_reset_period", "is_soft_limit", "public_id")
    list_filter = ("environment", "is_enabled", "usage_reset_period")
    search_fields = ("public_id", "plan__name", "feature__name", "feature__lookup_key")
    list_select_related = ("plan", "feature")
    readonly_fields = ("public_id", "environment", "created_at", "updated_at")

    def get_readonly_fields(self, request: HttpRequest, obj: Entitlement | None = None):
        return (*self.readonly_fields, "plan", "feature") if obj is not None else self.readonly_fields

    def save_model(self, request: HttpRequest, obj: Entitlement, form: EntitlementAdminForm, change: bool) -> None:
        if change:
            services.entitlement_update(entitlement=Entitlement.objects.get(pk=obj.pk), data=form.settings_data())
        else:
            data = {"plan_id": obj.plan.public_id, "feature_id": obj.feature.public_id, **form.settings_data()}
            obj.pk = services.entitlement_create(environment=obj.plan.environment, data=data).pk
        obj.refresh_from_db()


class SubscriptionAdminForm(forms.ModelForm):
    metadata = MetadataRowsField()

    class Meta:
        model = Subscription
        fields = (
            "customer",
            "plan",
            "start_date",
            "end_date",
            "billing_anchor",
            "billing_period",
            "currency",
            "lookup_key",
            "metadata",
        )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in ("start_date", "billing_anchor"):
            if name in self.fields:
                self.fields[name].required = False

    def subscription_data(self) -> dict[str, Any]:
        data = {**self.cleaned_data}
        customer, plan = data.pop("customer", None), data.pop("plan", None)
        if customer is not None:
            data["customer_id"] = customer.public_id
        if plan is not None:
            data["plan_id"] = plan.public_id
        return data

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if self.errors:
            return cleaned
        customer, plan = cleaned.get("customer"), cleaned.get("plan")
        if customer is not None and plan is not None and customer.environment_id != plan.environment_id:
            self.add_error("plan", "must belong to the customer's environment")
        try:
            if self.instance.pk is None:
                rules.subscription_clean(self.subscription_data(), now=timezone.now())
            else:
                rules.subscription_end_clean(cleaned.get("end_date"), start=self.instance.start_date)
        except ValidationFailed as exc:
            add_rule_errors(self, exc, {"customer_id": "customer", "plan_id": "plan"})
        return cleaned


@admin.register(Subscription)
class SubscriptionAdmin(ServiceErrorsMixin, admin.ModelAdmin):
    form = SubscriptionAdminForm
    list_display = ("customer", "plan", "start_date", "end_date", "billing_period", "public_id")
    list_filter = ("environment", "billing_period")
    search_fields = ("public_id", "customer__external_id", "customer__name", "plan__name")
    list_select_related = ("customer", "plan")
    readonly_fields = ("public_id", "environment", "created_at", "updated_at")

    def get_readonly_fields(self, request: HttpRequest, obj: Subscription | None = None):
        if obj is None:
            return self.readonly_fields
        return (*self.readonly_fields, "customer", "plan", "start_date", "billing_anchor", "billing_period", "currency")

    def save_model(self, request: HttpRequest, obj: Subscription, form: SubscriptionAdminForm, change: bool) -> None:
        if change:
            data = {name: form.cleaned_data.get(name) for name in ("end_date", "lookup_key", "metadata")}
            services.subscription_update(subscription=Subscription.objects.get(pk=obj.pk), data=data)
        else:
            environment = obj.customer.environment
            obj.pk = services.subscription_create(environment=environment, data=form.subscription_data()).pk
        obj.refresh_from_db()
