"""Dashboard URLs of metering (mounted at the site root): customers, the event debugger, usage."""

from django.urls import path

from metering.views import customers, events, usage

app_name = "metering"

urlpatterns = [
    path("customers/", customers.customer_list, name="customer_list"),
    path("customers/new/", customers.customer_create_view, name="customer_create"),
    path("customers/<str:public_id>/", customers.customer_detail, name="customer_detail"),
    path("customers/<str:public_id>/edit/", customers.customer_edit_view, name="customer_edit"),
    path("customers/<str:public_id>/portal/", customers.customer_portal_open, name="customer_portal_open"),
    path("customers/<str:public_id>/portal/revoke/", customers.customer_portal_revoke, name="customer_portal_revoke"),
    path("events/", events.event_stream, name="event_stream"),
    path("events/detail/", events.event_detail, name="event_detail"),
    path("events/test/", events.event_test, name="event_test"),
    path("events/unmatched/", events.event_unmatched, name="event_unmatched"),
    path("usage/", usage.usage_index, name="usage_index"),
    path("usage/features/<str:public_id>/", usage.usage_feature, name="usage_feature"),
    path("usage/features/<str:public_id>/customers.csv", usage.usage_feature_csv, name="usage_feature_csv"),
    path("usage/customers/<str:public_id>/", usage.usage_customer, name="usage_customer"),
    path("usage/customers/<str:public_id>/usage.csv", usage.usage_customer_csv, name="usage_customer_csv"),
]
