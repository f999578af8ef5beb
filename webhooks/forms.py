"""The dashboard's endpoint form: fields only; `webhooks.rules` decides what is valid."""

from django import forms

from flexmeter.errors import ValidationFailed
from webhooks import rules
from webhooks.models import EventType


class WebhookEndpointForm(forms.Form):
    url = forms.CharField(label="Endpoint URL", max_length=rules.URL_MAX_LENGTH)
    description = forms.CharField(label="Description", max_length=rules.DESCRIPTION_MAX_LENGTH, required=False)
    event_types = forms.MultipleChoiceField(
        label="Events to send",
        choices=EventType.choices,
        widget=forms.CheckboxSelectMultiple,
        required=False,
        initial=[EventType.FEATURE_USAGE_ALERT, EventType.ENTITLEMENT_USAGE_LIMIT_REACHED],
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["url"].widget.attrs.update(placeholder="https://example.com/webhooks/flexmeter", autocomplete="off")
        self.fields["description"].widget.attrs.update(placeholder="Billing service")

    def clean(self):
        cleaned = super().clean()
        try:
            cleaned["values"] = rules.endpoint_clean(
                {
                    "url": cleaned.get("url", self.data.get("url")),
                    "description": cleaned.get("description") or "",
                    "event_types": cleaned.get("event_types") or [],
                }
            )
        except ValidationFailed as exc:
            for field, message in exc.details.items():
                if field in self.fields and field not in self.errors:
                    self.add_error(field, message)
        return cleaned
