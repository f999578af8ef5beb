"""Dashboard URLs of the product catalog (mounted at /catalog/)."""

from django.urls import path

from catalog import views

app_name = "catalog"

urlpatterns = [
    path("features/", views.feature_list, name="feature_list"),
    path("features/new/", views.feature_wizard_start, name="feature_wizard_start"),
    path("features/new/lookup-key/", views.feature_wizard_lookup_key, name="feature_wizard_lookup_key"),
    path("features/new/<str:public_id>/discard/", views.feature_wizard_discard, name="feature_wizard_discard"),
    path(
        "features/new/<str:public_id>/event/check/", views.feature_wizard_event_check, name="feature_wizard_event_check"
    ),
    path("features/new/<str:public_id>/<slug:step>/", views.feature_wizard_step, name="feature_wizard_step"),
    path("features/<str:public_id>/", views.feature_detail, name="feature_detail"),
    path("features/<str:public_id>/edit/", views.feature_edit, name="feature_edit"),
    path("features/<str:public_id>/archive/", views.feature_archive, name="feature_archive"),
    path("meters/", views.meter_list, name="meter_list"),
    path("meters/<str:public_id>/", views.meter_detail, name="meter_detail"),
]
