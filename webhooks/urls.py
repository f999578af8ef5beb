from django.urls import path

from webhooks import views

app_name = "webhooks"

urlpatterns = [
    path("settings/webhooks/", views.endpoint_list, name="endpoint_list"),
    path("settings/webhooks/new/", views.endpoint_create, name="endpoint_create"),
    path("settings/webhooks/deliveries/<str:message_id>/", views.message_detail, name="message_detail"),
    path("settings/webhooks/deliveries/<str:message_id>/resend/", views.message_resend, name="message_resend"),
    path("settings/webhooks/<str:endpoint_id>/", views.endpoint_detail, name="endpoint_detail"),
    path("settings/webhooks/<str:endpoint_id>/test/", views.endpoint_send_test, name="endpoint_send_test"),
    path("settings/webhooks/<str:endpoint_id>/toggle/", views.endpoint_toggle, name="endpoint_toggle"),
    path("settings/webhooks/<str:endpoint_id>/rotate/", views.endpoint_rotate_secret, name="endpoint_rotate_secret"),
    path("settings/webhooks/<str:endpoint_id>/delete/", views.endpoint_delete, name="endpoint_delete"),
]
