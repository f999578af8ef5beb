"""Django admin for meters and features.

Forms validate through `catalog.rules` (same messages as the API, shown on the matching form field) and saves go
through `catalog.services`, so admin cannot create what the API would reject. Once published, a meter's
definition and a feature's type, lookup key and meter are read-only. Nothing is hard-deleted here: meters are
archived and features soft-deleted with the list actions, so usage history never loses its meaning.

Nothing is typed as JSON: filters and metadata are rows of inputs (`catalog.admin_fields`), alerts are the
dashboard's own fields (`catalog.forms.AlertFieldsForm`), and choices carry the dashboard's words (the models'
choice labels, `catalog.forms.OPERATOR_LABELS`).
"""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponseRedirect
from django.utils.html import format_html_join
from django.utils.safestring import mark_safe

from catalog import rules, services
from catalog.admin_fields import FilterRowsField, MetadataRowsField, RowsField
from catalog.forms import ALERT_CONDITION_CHOICES, ALERT_ERROR_PATHS, AlertFieldsForm
from catalog.models import Feature, FeatureStatus, FeatureType, Meter, MeterStatus
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
FEATURE_FIELD_OF_PATH = {"meter_id": "meter", "meter": "meter", **ALERT_ERROR_PATHS}
ALERT_FIELDS = ("alert_enabled", "alert_condition", "info_threshold", "warning_threshold", "critical_threshold")
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
    """Show each rule error on its form field (with its JSON path when that is more precise than the field).

    A rows field (filters, metadata) words the error after its row and marks that row's input invalid.
    """
    for path, message in exc.details.items():
        field = _form_field_of(path, mapping)
        rows_field = form.fields.get(field)
        if isinstance(rows_field, RowsField) and path not in mapping:
            text, cell = rows_field.row_error(path, message, form[field].data)
            if cell is not None:
                rows_field.widget.invalid.add(cell)  # type: ignore[attr-defined]
            form.add_error(field, text)
            continue
        text = message if path in mapping or path == field else f"{path}: {message}"
        if field in form.fields:
            form.add_error(field, text)
        else:
            form.add_error(None, f"{path}: {message}")


class MeterAdminForm(forms.ModelForm):
    filters = FilterRowsField(
        help_text="An event counts only when every filter matches. Once the meter is published, filters can only be "
        "added to: a new value, or a new filter."
    )

    class Meta:
        model = Meter
        fields = ("environment", "name", *METER_DEFINITION_FIELDS[1:], "filters")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "bucket_size" in self.fields:
            self.fields["bucket_size"].choices = [("", "No buckets"), *self.fields["bucket_size"].choices[1:]]
        if "aggregation_field" in self.fields:
            self.fields["aggregation_field"].help_text = "The event property to aggregate (Count needs none)."
        if "aggregation_expression" in self.fields:
            self.fields["aggregation_expression"].widget.attrs["rows"] = 3
            self.fields[
                "aggregation_expression"
            ].help_text = "A CEL expression instead of a field, e.g. input_tokens + output_tokens."

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

    def get_fieldsets(self, request: HttpRequest, obj: Meter | None = None):
        fieldsets: list = [
            (None, {"fields": ("environment", "name")}),
            ("What counts", {"fields": ("event_name", "filters")}),
            (
                "Aggregation",
                {
                    "fields": (
                        "aggregation_type",
                        "aggregation_field",
                        "aggregation_expression",
                        "multiplier",
                        "bucket_size",
                        "group_by",
                    )
                },
            ),
            ("Usage reset", {"fields": ("reset_usage",)}),
        ]
        if obj is not None:
            fieldsets.append(("Record", {"fields": self.readonly_fields}))
        return fieldsets

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


class FeatureAdminForm(AlertFieldsForm, forms.ModelForm):
    """The alert fields come from the dashboard's edit form (`AlertFieldsForm`) and build `alert_settings`."""

    metadata = MetadataRowsField()

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
            "metadata",
        )
        labels = {"unit_singular": "Unit (singular)", "unit_plural": "Unit (plural)"}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        instance = kwargs.get("instance")
        if instance is not None:
            kwargs["initial"] = {**self.alert_initial(instance.alert_settings), **(kwargs.get("initial") or {})}
        super().__init__(*args, **kwargs)
        if "meter" in self.fields:
            self.fields["meter"].queryset = Meter.objects.published().select_related("environment")
            self.fields["meter"].help_text = "Metered features only: a published meter of the same environment."
        for level in rules.ALERT_LEVELS:
            self.fields[f"{level}_threshold"].label = f"{level.capitalize()} threshold"
            self.fields[f"{level}_threshold"].widget.attrs["inputmode"] = "decimal"

    def feature_data(self) -> dict[str, Any]:
        """The form as an API-shaped feature (`catalog.rules` input): alert fields become `alert_settings`."""
        data = {key: value for key, value in self.cleaned_data.items() if key not in ALERT_FIELDS}
        data["alert_settings"] = self.alert_settings()
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
        if obj is not None and not self.has_change_permission(request, obj):
            return (*self.readonly_fields, "alerts", "metadata_entries")
        if obj is not None:
            return (*self.readonly_fields, "environment", "type", "lookup_key", "meter")
        return self.readonly_fields

    def get_fieldsets(self, request: HttpRequest, obj: Feature | None = None):
        """Editable: the alert and metadata inputs. Read-only (a deleted feature): the same settings in words."""
        editable = obj is None or self.has_change_permission(request, obj)
        alerts = (
            ("alert_enabled", "alert_condition", ("info_threshold", "warning_threshold", "critical_threshold"))
            if editable
            else ("alerts",)
        )
        fieldsets: list = [(None, {"fields": ("environment", "name", "type", "lookup_key", "description")})]
        # A saved feature's type is fixed, so it shows only its own type's part.
        if obj is None or obj.type == FeatureType.METERED:
            fieldsets.append(("Metered features", {"fields": ("meter", "unit_singular", "unit_plural")}))
        if obj is None or obj.type in (FeatureType.STATIC, FeatureType.CONFIG):
            fieldsets.append(("Static and config features", {"fields": ("value",)}))
        fieldsets += [
            ("Alerts", {"fields": alerts, "description": AlertFieldsForm.threshold_help}),
            ("Metadata", {"fields": ("metadata",) if editable else ("metadata_entries",)}),
        ]
        if obj is not None:
            fieldsets.append(("Record", {"fields": self.readonly_fields}))
        return fieldsets

    @admin.display(description="Alerts")
    def alerts(self, obj: Feature) -> str:
        settings = obj.alert_settings or {}
        levels = [level for level in rules.ALERT_LEVELS if level in settings]
        if not levels:
            return "Off"
        given = settings[levels[0]]["condition"]
        condition = dict(ALERT_CONDITION_CHOICES).get(given, given)
        state = "On" if settings.get("alert_enabled") else "Off"
        thresholds = ", ".join(f"{level} {settings[level]['threshold']}" for level in levels)
        return f"{state}: {condition.lower()} — {thresholds}"

    @admin.display(description="Metadata")
    def metadata_entries(self, obj: Feature) -> str:
        entries = (obj.metadata or {}).items()
        if not entries:
            return "None"
        return format_html_join(mark_safe("<br>"), "<code>{}</code> = {}", entries)

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
