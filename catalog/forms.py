"""Dashboard forms for the catalog: the Add Feature wizard's steps and the feature edit form.

Forms only shape input; every rule is applied by `catalog.rules` (through `catalog.wizard` and the services), and
the rule's JSON-path errors are mapped back onto these fields with `add_details_errors`.
"""

from django import forms

from catalog.models import AggregationType, BucketSize, FeatureType, ResetUsage
from catalog.rules import ALERT_LEVELS, FILTER_OPERATORS

FEATURE_TYPE_HELP = {
    FeatureType.METERED: ("Metered", "Usage is counted from events you send, e.g. API calls or tokens."),
    FeatureType.BOOLEAN: ("Boolean", "On or off for a customer, e.g. SSO or priority support."),
    FeatureType.STATIC: ("Static", "A fixed value shown in the catalog, e.g. “5 seats”."),
    FeatureType.CONFIG: ("Config", "A configuration value your app reads, e.g. a rate limit."),
}

# The title of each card is the type's label (the dashboard's word, also admin's): (title, description, example).
AGGREGATION_HELP = {
    kind: (AggregationType(kind).label, *texts)
    for kind, texts in {
        AggregationType.COUNT: ("Counts the matching events; no property needed.", "1,000 API calls"),
        AggregationType.SUM: ("Adds up a numeric property across the matching events.", "12,400 tokens"),
        AggregationType.AVG: ("The mean of a numeric property over the period.", "230 ms response time"),
        AggregationType.MIN: ("The smallest value of a numeric property seen in the period.", "lowest balance"),
        AggregationType.MAX: (
            "The largest value seen; with buckets, the peaks per bucket added up.",
            "peak seats",
        ),
        AggregationType.COUNT_UNIQUE: ("Counts distinct values of a property.", "monthly active users"),
        AggregationType.LATEST: ("The value of the most recent event in the period.", "current plan size"),
        AggregationType.SUM_WITH_MULTIPLIER: (
            "Adds up a property, then multiplies the total by a fixed rate.",
            "bytes × 0.000001 = MB",
        ),
        AggregationType.WEIGHTED_SUM: (
            "Values are changes to a level; the result is that level averaged over time.",
            "GB stored over the month",
        ),
    }.items()
}

RESET_HELP = {
    ResetUsage.BILLING_PERIOD: (
        "Periodic",
        "Usage starts again from zero at the beginning of each billing period.",
        "Good for API calls and monthly allowances.",
    ),
    ResetUsage.NEVER: (
        "Cumulative",
        "Usage keeps growing across billing periods and never resets.",
        "Good for storage and lifetime totals.",
    ),
}

OPERATOR_LABELS = {
    "in": "is one of",
    "not_in": "is not one of",
    "contains": "contains",
    "not_contains": "doesn't contain",
}

QUANTITY_SOURCES = [("field", "A property"), ("expression", "A CEL expression")]


def add_details_errors(form: forms.Form, details: dict[str, str], field_map: dict[str, str]) -> None:
    """Attach rule errors (`{"aggregation.field": "is required"}`) to form fields; unknown paths go to the form."""
    for path, message in details.items():
        field = field_map.get(path)
        text = message[:1].upper() + message[1:]
        if field and field in form.fields:
            form.add_error(field, text)
        else:
            form.add_error(None, f"{path}: {message}")


class FeatureBasicsForm(forms.Form):
    name = forms.CharField(
        required=False, widget=forms.TextInput(attrs={"placeholder": "e.g. API calls", "autocomplete": "off"})
    )
    type = forms.CharField(required=False, widget=forms.RadioSelect(choices=FeatureType.choices))
    lookup_key = forms.CharField(
        required=False,
        widget=forms.TextInput(attrs={"placeholder": "derived from the name", "autocomplete": "off", "class": "mono"}),
    )
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    value = forms.CharField(required=False, widget=forms.TextInput(attrs={"placeholder": "e.g. 5 seats"}))

    error_paths = {"name": "name", "type": "type", "lookup_key": "lookup_key", "description": "description",
                   "value": "value"}  # fmt: skip


class FeatureEventForm(forms.Form):
    event_name = forms.CharField(
        required=False,
        widget=forms.TextInput(
            attrs={"placeholder": "api.calls", "autocomplete": "off", "class": "mono", "spellcheck": "false"}
        ),  # fmt: skip
    )

    error_paths = {"event_name": "event_name", "meter.event_name": "event_name"}


class FeatureAggregationForm(forms.Form):
    type = forms.CharField(required=False, widget=forms.RadioSelect(choices=AggregationType.choices))
    multiplier = forms.CharField(required=False, widget=forms.TextInput(attrs={"placeholder": "e.g. 0.001"}))
    bucket_size = forms.CharField(
        required=False, widget=forms.Select(choices=[("", "No buckets")] + BucketSize.choices)
    )
    group_by = forms.CharField(
        required=False, widget=forms.TextInput(attrs={"placeholder": "e.g. region", "class": "mono"})
    )

    error_paths = {
        "aggregation.type": "type",
        "aggregation.multiplier": "multiplier",
        "aggregation.bucket_size": "bucket_size",
        "aggregation.group_by": "group_by",
        "aggregation": "type",
    }


class FeatureFieldForm(forms.Form):
    source = forms.CharField(required=False, initial="field", widget=forms.RadioSelect(choices=QUANTITY_SOURCES))
    field = forms.CharField(
        required=False,
        widget=forms.TextInput(
            attrs={"placeholder": "e.g. credits", "autocomplete": "off", "class": "mono", "spellcheck": "false"}
        ),  # fmt: skip
    )
    expression = forms.CharField(
        required=False,
        widget=forms.Textarea(
            attrs={"rows": 3, "class": "mono", "placeholder": "input_tokens + output_tokens", "spellcheck": "false"}
        ),  # fmt: skip
    )

    error_paths = {"aggregation.field": "field", "aggregation.expression": "expression"}


class FeatureResetForm(forms.Form):
    reset_usage = forms.CharField(required=False, widget=forms.RadioSelect(choices=ResetUsage.choices))

    error_paths = {"reset_usage": "reset_usage"}


class FeatureUnitsForm(forms.Form):
    unit_singular = forms.CharField(
        required=False, widget=forms.TextInput(attrs={"placeholder": "credit", "autocomplete": "off"})
    )
    unit_plural = forms.CharField(
        required=False, widget=forms.TextInput(attrs={"placeholder": "credits", "autocomplete": "off"})
    )

    error_paths = {"unit_singular": "unit_singular", "unit_plural": "unit_plural"}


class FeatureFilterRowForm(forms.Form):
    key = forms.CharField(
        required=False, widget=forms.TextInput(attrs={"placeholder": "region", "class": "mono", "autocomplete": "off"})
    )
    operator = forms.CharField(
        required=False, widget=forms.Select(choices=[(op, OPERATOR_LABELS[op]) for op in FILTER_OPERATORS])
    )
    values = forms.CharField(
        required=False,
        # One paragraph under the rows explains the values (templates/catalog/wizard/filters.html).
        widget=forms.TextInput(
            attrs={
                "placeholder": "eu-west, eu-central",
                "autocomplete": "off",
                "aria-describedby": "filter-values-help",
            }
        ),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The rows share visual column headings; each input names its row for screen readers ("Filter 2 operator").
        row = f"Filter {int(self.prefix.rsplit('-', 1)[-1]) + 1}" if self.prefix else "Filter"
        for name, word in (("key", "property"), ("operator", "operator"), ("values", "values")):
            self.fields[name].widget.attrs["aria-label"] = f"{row} {word}"

    def is_blank(self) -> bool:
        data = self.cleaned_data if hasattr(self, "cleaned_data") else {}
        return not (data.get("key") or "").strip() and not (data.get("values") or "").strip()

    def as_filter(self) -> dict:
        values = [text.strip() for text in (self.cleaned_data.get("values") or "").split(",") if text.strip()]
        return {"key": self.cleaned_data.get("key", ""), "operator": self.cleaned_data.get("operator") or "in",
                "values": values}  # fmt: skip


FeatureFilterFormSet = forms.formset_factory(FeatureFilterRowForm, extra=0, max_num=50, absolute_max=50)


ALERT_CONDITION_CHOICES = [("above", "Usage goes above"), ("below", "Usage drops below")]
ALERT_THRESHOLD_HELP = (
    "For “above”, info ≤ warning ≤ critical; for “below”, the reverse. Leave a level empty to skip it."
)
#: Where `alert_settings_clean` errors land among the alert fields.
ALERT_ERROR_PATHS = {
    "alert_settings": "alert_enabled",
    "alert_settings.alert_enabled": "alert_enabled",
    **{f"alert_settings.{level}.threshold": f"{level}_threshold" for level in ALERT_LEVELS},
    **{f"alert_settings.{level}.condition": "alert_condition" for level in ALERT_LEVELS},
    **{f"alert_settings.{level}": f"{level}_threshold" for level in ALERT_LEVELS},
}


class AlertFieldsForm(forms.Form):
    """A feature's alert settings as form fields: on/off, one direction, a threshold per level (SPEC §2.2 has the
    levels share one condition). Shared by the dashboard's edit page and Django admin, so both say the same thing
    and build the same `alert_settings` for `catalog.rules` to check."""

    threshold_help = ALERT_THRESHOLD_HELP

    alert_enabled = forms.BooleanField(required=False, label="Send usage alerts")
    alert_condition = forms.CharField(
        required=False, label="Alert when", widget=forms.Select(choices=ALERT_CONDITION_CHOICES)
    )
    info_threshold = forms.CharField(required=False, label="Info", widget=forms.TextInput(attrs={"placeholder": "—"}))
    warning_threshold = forms.CharField(
        required=False, label="Warning", widget=forms.TextInput(attrs={"placeholder": "—"})
    )
    critical_threshold = forms.CharField(
        required=False, label="Critical", widget=forms.TextInput(attrs={"placeholder": "—"})
    )

    @staticmethod
    def alert_initial(alert_settings: dict | None) -> dict:
        alerts = alert_settings or {}
        given = [alerts[level]["condition"] for level in ("critical", "warning", "info") if level in alerts]
        condition = given[0] if given else "above"
        return {
            "alert_enabled": bool(alerts.get("alert_enabled")),
            "alert_condition": condition,
            **{f"{lvl}_threshold": alerts.get(lvl, {}).get("threshold", "") for lvl in ALERT_LEVELS},
        }

    def alert_settings(self) -> dict:
        """The fields as API `alert_settings` (levels left empty are left out; `{}` when off with no level)."""
        data = self.cleaned_data
        levels = {
            level: {"threshold": data[f"{level}_threshold"].strip(), "condition": data["alert_condition"] or "above"}
            for level in ALERT_LEVELS
            if data[f"{level}_threshold"].strip()
        }
        return {"alert_enabled": data["alert_enabled"], **levels} if data["alert_enabled"] or levels else {}


class FeatureEditForm(AlertFieldsForm):
    """The mutable fields of a published feature (SPEC §2.2): name, description, value, units, alert settings."""

    name = forms.CharField(required=False)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))
    value = forms.CharField(required=False)
    unit_singular = forms.CharField(required=False, widget=forms.TextInput(attrs={"placeholder": "credit"}))
    unit_plural = forms.CharField(required=False, widget=forms.TextInput(attrs={"placeholder": "credits"}))

    field_order = ["name", "description", "value", "unit_singular", "unit_plural"]

    error_paths = {
        "name": "name",
        "description": "description",
        "value": "value",
        "unit_singular": "unit_singular",
        "unit_plural": "unit_plural",
        **ALERT_ERROR_PATHS,
    }

    @classmethod
    def initial_for(cls, feature) -> dict:
        return {
            "name": feature.name,
            "description": feature.description,
            "value": feature.value,
            "unit_singular": feature.unit_singular,
            "unit_plural": feature.unit_plural,
            **cls.alert_initial(feature.alert_settings),
        }

    def as_changes(self, *, with_value: bool) -> dict:
        data = self.cleaned_data
        changes = {
            "name": data["name"],
            "description": data["description"],
            "unit_singular": data["unit_singular"],
            "unit_plural": data["unit_plural"],
            "alert_settings": self.alert_settings(),
        }
        if with_value:
            changes["value"] = data["value"]
        return changes


class FeatureFiltersAddForm(forms.Form):
    """Filter values to add to a published feature's meter (SPEC §2.1, §6.3): more values for an existing filter,
    or one new filter. Nothing shown here can remove or change a value, so the merge rule (`filters_merge`,
    additive) is the only thing a save can do; its errors come back under `filters[N]…` and land on the input
    they concern (`error_paths`, built per request).
    """

    new_key = forms.CharField(
        required=False, widget=forms.TextInput(attrs={"placeholder": "region", "class": "mono", "autocomplete": "off"})
    )
    new_operator = forms.CharField(
        required=False, widget=forms.Select(choices=[(op, OPERATOR_LABELS[op]) for op in FILTER_OPERATORS])
    )
    new_values = forms.CharField(
        required=False, widget=forms.TextInput(attrs={"placeholder": "eu-west, eu-central", "autocomplete": "off"})
    )

    def __init__(self, *args, existing: list[dict], **kwargs):
        super().__init__(*args, **kwargs)
        self.existing = existing
        for index, item in enumerate(existing):
            self.fields[f"add_{index}"] = forms.CharField(
                required=False,
                label=f"Add values to {item['key']}",
                widget=forms.TextInput(attrs={"placeholder": "value, another value", "autocomplete": "off"}),
            )
        self.error_paths: dict[str, str] = {}

    def rows(self) -> list[dict]:
        """The existing filters with their add-values input, for the template."""
        return [
            {
                "key": item["key"],
                "operator": item.get("operator", "in"),
                "values": item["values"],
                "field": self[f"add_{index}"],
            }  # fmt: skip
            for index, item in enumerate(self.existing)
        ]

    def as_filters(self) -> list[dict]:
        """The additions as PUT /v1/features filters (empty when nothing was typed), remembering which input each
        `filters[N]` came from."""
        filters: list[dict] = []
        self.error_paths = {}
        for index, item in enumerate(self.existing):
            values = _comma_list(self.cleaned_data.get(f"add_{index}"))
            if values:
                position = len(filters)
                filters.append({"key": item["key"], "operator": item.get("operator", "in"), "values": values})
                self.error_paths.update({f"filters[{position}]": f"add_{index}",
                                         f"filters[{position}].values": f"add_{index}",
                                         f"filters[{position}].operator": f"add_{index}"})  # fmt: skip
        key = (self.cleaned_data.get("new_key") or "").strip()
        values = _comma_list(self.cleaned_data.get("new_values"))
        if key or values:
            position = len(filters)
            filters.append({"key": key, "operator": self.cleaned_data.get("new_operator") or "in", "values": values})
            self.error_paths.update({f"filters[{position}]": "new_key", f"filters[{position}].key": "new_key",
                                     f"filters[{position}].values": "new_values",
                                     f"filters[{position}].operator": "new_operator"})  # fmt: skip
        self.error_paths["filters"] = "new_key"
        return filters


def _comma_list(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]
