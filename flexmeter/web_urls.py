"""Dashboard URLs shared by every app (login, home, settings)."""

from django.contrib.auth import views as auth_views
from django.urls import path

from flexmeter import views

app_name = "flexmeter"

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(template_name="registration/login.html"), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", views.home, name="home"),
]
