"""Dashboard URLs of metering (mounted at the site root): customers, the event debugger, usage."""

from django.urls import path

from metering import views, views_events, views_usage

app_name = "metering"

urlpatterns = [
    path("customers/", views.customer_list, name="customer_list"),
    path("customers/new/", views.customer_create_view, name="customer_create"),
    path("customers/<str:public_id>/", views.customer_detail, name="customer_detail"),
    path("events/", views_events.event_stream, name="event_stream"),
    path("events/detail/", views_events.event_detail, name="event_detail"),
    path("events/test/", views_events.event_test, name="event_test"),
    path("events/unmatched/", views_events.event_unmatched, name="event_unmatched"),
    path("usage/", views_usage.usage_index, name="usage_index"),
    path("usage/features/<str:public_id>/", views_usage.usage_feature, name="usage_feature"),
    path("usage/features/<str:public_id>/customers.csv", views_usage.usage_feature_csv, name="usage_feature_csv"),
    path("usage/customers/<str:public_id>/", views_usage.usage_customer, name="usage_customer"),
    path("usage/customers/<str:public_id>/usage.csv", views_usage.usage_customer_csv, name="usage_customer_csv"),
]
