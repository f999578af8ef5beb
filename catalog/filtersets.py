"""FilterSets for the catalog pages: the same query parameters drive the full page and its htmx refresh."""

import django_filters
from django.db.models import Q

from catalog.models import AggregationType, Feature, FeatureStatus, FeatureType, Meter, MeterStatus
from flexmeter.forms import named_select


class FeatureFilterSet(django_filters.FilterSet):
    q = django_filters.CharFilter(method="search", label="Search")
    type = django_filters.ChoiceFilter(
        choices=FeatureType.choices, empty_label="All types", widget=named_select("Feature type")
    )
    status = django_filters.ChoiceFilter(
        choices=[(FeatureStatus.PUBLISHED, "Published"), (FeatureStatus.ARCHIVED, "Archived")],
        empty_label="Any status",
        widget=named_select("Feature status"),
    )

    class Meta:
        model = Feature
        fields = ["q", "type", "status"]

    def search(self, queryset, name, value):
        """Name, lookup key, public id or the meter's event name."""
        value = value.strip()
        if not value:
            return queryset
        return queryset.filter(
            Q(name__icontains=value)
            | Q(lookup_key__icontains=value)
            | Q(public_id=value)
            | Q(meter__event_name__icontains=value)
        )


class MeterFilterSet(django_filters.FilterSet):
    q = django_filters.CharFilter(method="search", label="Search")
    aggregation_type = django_filters.ChoiceFilter(
        choices=AggregationType.choices, empty_label="All aggregations", widget=named_select("Aggregation")
    )
    status = django_filters.ChoiceFilter(
        choices=[(MeterStatus.PUBLISHED, "Published"), (MeterStatus.ARCHIVED, "Archived")],
        empty_label="Any status",
        widget=named_select("Meter status"),
    )

    class Meta:
        model = Meter
        fields = ["q", "aggregation_type", "status"]

    def search(self, queryset, name, value):
        value = value.strip()
        if not value:
            return queryset
        return queryset.filter(Q(name__icontains=value) | Q(event_name__icontains=value) | Q(public_id=value))
