"""Dashboard URLs shared by every app (login, home, settings)."""

from django.contrib.auth import views as auth_views
from django.urls import path

from flexmeter import portal_views, views
from metering.views.overview import overview

app_name = "flexmeter"

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(template_name="registration/login.html"), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", overview, name="home"),
    path("portal/<str:token>/", portal_views.portal_page, name="portal"),
    path("settings/api-keys/", views.api_key_list, name="api_key_list"),
    path("settings/api-keys/new/", views.api_key_create_view, name="api_key_create"),
    path("settings/api-keys/<int:pk>/revoke/", views.api_key_revoke_view, name="api_key_revoke"),
    path("settings/environments/", views.environment_list, name="environment_list"),
    path("settings/environments/new/", views.environment_create, name="environment_create"),
    path("settings/environments/switch/", views.environment_switch, name="environment_switch"),
]
