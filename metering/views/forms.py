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


class CustomerEditForm(CustomerCreateForm):
    """The same fields as creation; an empty email clears it. Changing the external id re-points the customer at
    the events sent with the new id (the service keeps it unique)."""

    @classmethod
    def initial_for(cls, customer) -> dict:
        return {key: getattr(customer, key) for key in ("external_id", "name", "email", "billing_period")}

    def as_data(self) -> dict:
        return {**self.cleaned_data, "email": self.cleaned_data.get("email") or ""}
