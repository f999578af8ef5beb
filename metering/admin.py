"""Admin for customers (validated by the same `customer_clean` as the API) and a read-only view of raw events."""

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError

from flexmeter.errors import ValidationFailed
from metering.models import Customer, Event
from metering.services import customer_clean


class CustomerAdminForm(forms.ModelForm):
    class Meta:
        model = Customer
        fields = ["environment", "external_id", "name", "email", "metadata", "billing_anchor", "billing_period"]

    def clean(self):
        cleaned = super().clean()
        data = {name: cleaned.get(name) for name in ("external_id", "name", "email", "metadata", "billing_anchor")}
        data["billing_period"] = cleaned.get("billing_period")
        try:
            cleaned.update(customer_clean({k: v for k, v in data.items() if v is not None}))
        except ValidationFailed as exc:
            raise ValidationError({field: message for field, message in exc.details.items()}) from None
        # The partial unique constraint involves `status`, which the form excludes, so Django skips it; check
        # here for a friendly message (the database constraint stays the guarantee).
        clashes = Customer.objects.active().filter(
            environment=cleaned.get("environment"), external_id=cleaned.get("external_id")
        )
        if self.instance.pk:
            clashes = clashes.exclude(pk=self.instance.pk)
        if clashes.exists():
            raise ValidationError({"external_id": "An active customer with this external id already exists."})
        return cleaned


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    form = CustomerAdminForm
    list_display = ["external_id", "name", "email", "billing_period", "status", "environment", "created_at"]
    list_filter = ["environment", "status", "billing_period"]
    search_fields = ["external_id", "name", "email", "public_id"]
    readonly_fields = ["public_id", "status", "created_at", "updated_at"]

    def has_delete_permission(self, request, obj=None):
        # Deleting is a soft delete through the API (events and history stay); admin never hard-deletes.
        return False


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    """Raw events are facts: viewable and searchable here, written only through ingestion."""

    list_display = ["event_id", "event_name", "external_customer_id", "timestamp", "ingested_at", "environment"]
    list_filter = ["environment", "event_name"]
    search_fields = ["=event_id", "=external_customer_id", "event_name"]
    show_full_result_count = False
    ordering = ["-timestamp", "-id"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
