"""Dashboard forms for metering pages. `metering.services.customer_clean` validates; these only shape input."""

from django import forms

from metering.models import BillingPeriod


class CustomerCreateForm(forms.Form):
    external_id = forms.CharField(
        required=False,
        widget=forms.TextInput(attrs={"placeholder": "e.g. acme-corp", "class": "mono", "autocomplete": "off"}),
        help_text="The id your application sends as external_customer_id in events.",
    )
    name = forms.CharField(required=False, widget=forms.TextInput(attrs={"placeholder": "Acme Corp"}))
    email = forms.CharField(required=False, widget=forms.EmailInput(attrs={"placeholder": "billing@acme.com"}))
    billing_period = forms.ChoiceField(choices=BillingPeriod.choices, initial=BillingPeriod.MONTHLY)

    error_paths = {"external_id": "external_id", "name": "name", "email": "email", "billing_period": "billing_period"}

    def as_data(self) -> dict:
        data = {key: value for key, value in self.cleaned_data.items() if key != "email"}
        if self.cleaned_data.get("email"):
            data["email"] = self.cleaned_data["email"]
        return data
