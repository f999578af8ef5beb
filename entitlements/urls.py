"""Dashboard URLs of plans (mounted at /catalog/plans/) and a customer's access (under /customers/)."""

from django.urls import path

from entitlements import views

app_name = "entitlements"

urlpatterns = [
    path("catalog/plans/", views.plan_list, name="plan_list"),
    path("catalog/plans/new/", views.plan_create, name="plan_create"),
    path("catalog/plans/validate/", views.plan_validate, name="plan_validate"),
    path("catalog/plans/<str:public_id>/", views.plan_detail, name="plan_detail"),
    path("catalog/plans/<str:public_id>/edit/", views.plan_edit, name="plan_edit"),
    path("catalog/plans/<str:public_id>/archive/", views.plan_archive, name="plan_archive"),
    path("catalog/plans/<str:public_id>/entitlements/new/", views.entitlement_create, name="entitlement_create"),
    path("catalog/entitlements/<str:public_id>/edit/", views.entitlement_edit, name="entitlement_edit"),
    path("catalog/entitlements/<str:public_id>/delete/", views.entitlement_delete, name="entitlement_delete"),
    path("customers/<str:public_id>/subscribe/", views.customer_subscribe, name="customer_subscribe"),
    path("customers/<str:public_id>/access/", views.customer_access_check, name="customer_access_check"),
    path("subscriptions/<str:public_id>/end/", views.subscription_end, name="subscription_end"),
]
