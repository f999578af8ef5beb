"""Django admin for meters and features.

Forms validate through `catalog.rules` (same messages as the API, shown on the matching form field) and saves go
through `catalog.services`, so admin cannot create what the API would reject. Once published, a meter's
definition and a feature's type, lookup key and meter are read-only. Nothing is hard-deleted here: meters are
archived and features soft-deleted with the list actions, so usage history never loses its meaning.
"""

import json
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpRequest, HttpResponseRedirect

from catalog import rules, services
from catalog.models import Feature, FeatureStatus, Meter, MeterStatus
from flexmeter.errors import FlexmeterError, ValidationFailed

METER_FIELD_OF_PATH = {
    "name": "name",
    "event_name": "event_name",
    "aggregation": "aggregation_type",
    "aggregation.type": "aggregation_type",
    "aggregation.field": "aggregation_field",
    "aggregation.expression": "aggregation_expression",
    "aggregation.multiplier": "multiplier",
    "aggregation.bucket_size": "bucket_size",
    "aggregation.group_by": "group_by",
    "reset_usage": "reset_usage",
}
FEATURE_FIELD_OF_PATH = {"meter_id": "meter", "meter": "meter"}
METER_DEFINITION_FIELDS = (
    "environment",
    "event_name",
    "aggregation_type",
    "aggregation_field",
    "aggregation_expression",
    "multiplier",
    "bucket_size",
    "group_by",
    "reset_usage",
)


def _form_field_of(path: str, mapping: dict[str, str]) -> str:
    """`aggregation.field` → `aggregation_field`; `filters[1].values` → `filters`; `metadata.plan` → `metadata`."""
    if path in mapping:
        return mapping[path]
    return path.split(".")[0].split("[")[0]


def add_rule_errors(form: forms.ModelForm, exc: ValidationFailed, mapping: dict[str, str]) -> None:
    """Show each rule error on its form field (with its JSON path when that is more precise than the field)."""
    for path, message in exc.details.items():
        field = _form_field_of(path, mapping)
        text = message if path in mapping or path == field else f"{path}: {message}"
        if field in form.fields:
            form.add_error(field, text)
        else:
            form.add_error(None, f"{path}: {message}")


class MeterAdminForm(forms.ModelForm):
    class Meta:
        model = Meter
        fields = ("environment", "name", *METER_DEFINITION_FIELDS[1:], "filters")

    def meter_data(self) -> dict[str, Any]:
        """The form as an API-shaped definition (`catalog.rules` input); read-only fields come from the instance."""
        data = {**self.cleaned_data}
        instance = self.instance

        def value(field: str) -> Any:
            return data[field] if field in data else getattr(instance, field)

        return {
            "name": value("name"),
            "event_name": value("event_name"),
            "aggregation": {
                "type": value("aggregation_type"),
                "field": value("aggregation_field"),
                "expression": value("aggregation_expression"),
                "multiplier": value("multiplier"),
                "bucket_size": value("bucket_size"),
                "group_by": value("group_by"),
            },
            "filters": value("filters"),
            "reset_usage": value("reset_usage"),
        }

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if self.errors:
            return cleaned
        data = self.meter_data()
        try:
            if self.instance.pk is None:
                definition = rules.meter_definition_clean(data)
            else:
                current = Meter.objects.get(pk=self.instance.pk)
                definition = rules.meter_changes_clean(
                    current=rules.meter_definition_of(current),
                    status=current.status,
                    data=data
                    if current.status == MeterStatus.DRAFT
                    else {"name": data["name"], "filters": data["filters"]},
                    filters_complete=True,
                )
        except ValidationFailed as exc:
            add_rule_errors(self, exc, METER_FIELD_OF_PATH)
            return cleaned
        environment = cleaned.get("environment") or getattr(self.instance, "environment", None)
        status = self.instance.status if self.instance.pk else MeterStatus.PUBLISHED
        if environment is not None and status == MeterStatus.PUBLISHED:
            duplicate = (
                Meter.objects.for_environment(environment)
                .published()
                .filter(fingerprint=rules.meter_fingerprint(definition))
                .exclude(pk=self.instance.pk)
                .first()
            )
            if duplicate is not None:
                self.add_error(None, f"Published meter {duplicate.public_id} ({duplicate.name}) already counts this")
        return cleaned


class DecimalJSONDecoder(json.JSONDecoder):
    """Reads JSON numbers with a fraction or exponent as `Decimal`, never as a float that keeps ~17 digits."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **{**kwargs, "parse_float": Decimal})


def exact_numbers_as_text(value: Any) -> Any:
    """The JSON value with every Decimal turned into its text: decimal settings are stored as strings (SPEC §6.1)."""
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


class ServiceErrorsMixin:
    """A service error that slips past form validation (a concurrent duplicate) becomes a message, not a 500."""

    def changeform_view(self, request: HttpRequest, *args: Any, **kwargs: Any):
        try:
            return super().changeform_view(request, *args, **kwargs)
        except FlexmeterError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())


@admin.register(Meter)
class MeterAdmin(ServiceErrorsMixin, admin.ModelAdmin):
    form = MeterAdminForm
    list_display = ("name", "event_name", "aggregation_type", "aggregation_field", "status", "environment", "public_id")
    list_filter = ("environment", "status", "aggregation_type", "reset_usage")
    search_fields = ("name", "event_name", "public_id", "aggregation_field")
    list_select_related = ("environment",)
    readonly_fields = ("public_id", "status", "fingerprint", "created_at", "updated_at")
    actions = ("archive_meters",)

    def get_readonly_fields(self, request: HttpRequest, obj: Meter | None = None):
        if obj is not None and obj.status != MeterStatus.DRAFT:
            return (*self.readonly_fields, *METER_DEFINITION_FIELDS)
        return self.readonly_fields

    def has_delete_permission(self, request: HttpRequest, obj: Meter | None = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Meter, form: MeterAdminForm, change: bool) -> None:
        data = form.meter_data()
        if change:
            current = Meter.objects.get(pk=obj.pk)
            if current.status != MeterStatus.DRAFT:
                data = {"name": data["name"], "filters": data["filters"]}
            services.meter_update(meter=current, data=data)
        else:
            obj.pk = services.meter_create(environment=obj.environment, data=data).pk
        obj.refresh_from_db()

    @admin.action(description="Archive selected meters (usage history stays)")
    def archive_meters(self, request: HttpRequest, queryset) -> None:
        for meter in queryset:
            services.meter_archive(meter=meter)
        self.message_user(request, f"Archived {queryset.count()} meter(s).", messages.SUCCESS)


class FeatureAdminForm(forms.ModelForm):
    class Meta:
        model = Feature
        fields = (
            "environment",
            "name",
            "type",
            "lookup_key",
            "description",
            "meter",
            "value",
            "unit_singular",
            "unit_plural",
            "alert_settings",
            "metadata",
        )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "alert_settings" in self.fields:
            self.fields["alert_settings"].decoder = DecimalJSONDecoder
            self.fields["alert_settings"].encoder = DjangoJSONEncoder
        if "meter" in self.fields:
            self.fields["meter"].queryset = Meter.objects.published().select_related("environment")
            self.fields["meter"].help_text = "Metered features only: a published meter of the same environment."

    def clean_alert_settings(self) -> Any:
        """Thresholds typed as JSON numbers keep every digit (read as Decimal, checked and stored as text)."""
        return exact_numbers_as_text(self.cleaned_data.get("alert_settings"))

    def feature_data(self) -> dict[str, Any]:
        data = {**self.cleaned_data}
        meter = data.pop("meter", None)
        data.pop("environment", None)
        if meter is not None:
            data["meter_id"] = meter.public_id
        return data

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if self.errors:
            return cleaned
        data = self.feature_data()
        if self.instance.pk is not None:
            try:
                rules.feature_changes_clean(current=rules.feature_state_of(self.instance), data=data)
            except ValidationFailed as exc:
                add_rule_errors(self, exc, FEATURE_FIELD_OF_PATH)
            return cleaned
        try:
            rules.feature_definition_clean(data)
        except ValidationFailed as exc:
            add_rule_errors(self, exc, FEATURE_FIELD_OF_PATH)
        environment = cleaned.get("environment")
        if environment is None:
            return cleaned
        if data.get("meter_id"):
            try:
                services.feature_meter_resolve(environment=environment, meter_id=data["meter_id"])
            except ValidationFailed as exc:
                add_rule_errors(self, exc, FEATURE_FIELD_OF_PATH)
        lookup_key = (data.get("lookup_key") or "").strip() or rules.lookup_key_from_name(data.get("name") or "")
        self._check_lookup_key(environment, lookup_key)
        return cleaned

    def _check_lookup_key(self, environment, lookup_key: str) -> None:
        """A friendly early message; the database constraint still decides (a race ends as an admin message)."""
        taken = (
            Feature.objects.for_environment(environment)
            .filter(lookup_key=lookup_key, status__in=[FeatureStatus.PUBLISHED, FeatureStatus.ARCHIVED])
            .exists()
        )
        if taken:
            self.add_error("lookup_key", f"{lookup_key!r} is already used in this environment")


@admin.register(Feature)
class FeatureAdmin(ServiceErrorsMixin, admin.ModelAdmin):
    form = FeatureAdminForm
    list_display = ("name", "lookup_key", "type", "meter", "status", "environment", "public_id")
    list_filter = ("environment", "type", "status")
    search_fields = ("name", "lookup_key", "public_id", "meter__event_name")
    list_select_related = ("environment", "meter")
    readonly_fields = ("public_id", "status", "wizard_step", "created_at", "updated_at")
    actions = ("delete_features",)

    def get_readonly_fields(self, request: HttpRequest, obj: Feature | None = None):
        if obj is not None:
            return (*self.readonly_fields, "environment", "type", "lookup_key", "meter")
        return self.readonly_fields

    def has_delete_permission(self, request: HttpRequest, obj: Feature | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Feature | None = None) -> bool:
        """Deleted features are kept for the record and shown read-only."""
        if obj is not None and obj.status == FeatureStatus.DELETED:
            return False
        return super().has_change_permission(request, obj)

    def save_model(self, request: HttpRequest, obj: Feature, form: FeatureAdminForm, change: bool) -> None:
        data = form.feature_data()
        if change:
            services.feature_update(feature=Feature.objects.select_related("meter").get(pk=obj.pk), data=data)
        else:
            obj.pk = services.feature_create(environment=obj.environment, data=data).pk
        obj.refresh_from_db()

    @admin.action(description="Delete selected features (soft delete; archives their meters)")
    def delete_features(self, request: HttpRequest, queryset) -> None:
        features = list(queryset.select_related("meter"))
        for feature in features:
            services.feature_delete(feature=feature)
        self.message_user(request, f"Deleted {len(features)} feature(s).", messages.SUCCESS)
