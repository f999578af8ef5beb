"""Dashboard URLs of metering (mounted at the site root): customers."""

from django.urls import path

from metering import views

app_name = "metering"

urlpatterns = [
    path("customers/", views.customer_list, name="customer_list"),
    path("customers/new/", views.customer_create_view, name="customer_create"),
    path("customers/<str:public_id>/", views.customer_detail, name="customer_detail"),
]
