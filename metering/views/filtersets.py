"""FilterSets for the metering pages of the dashboard."""

import django_filters
from django.db.models import Q

from flexmeter.forms import named_select
from metering.models import BillingPeriod, Customer


class CustomerFilterSet(django_filters.FilterSet):
    q = django_filters.CharFilter(method="search", label="Search")
    billing_period = django_filters.ChoiceFilter(
        choices=BillingPeriod.choices, empty_label="Any billing period", widget=named_select("Billing period")
    )

    class Meta:
        model = Customer
        fields = ["q", "billing_period"]

    def search(self, queryset, name, value):
        """External id, name, email or public id."""
        value = value.strip()
        if not value:
            return queryset
        return queryset.filter(
            Q(external_id__icontains=value) | Q(name__icontains=value) | Q(email__icontains=value) | Q(public_id=value)
        )
