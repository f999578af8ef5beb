from django.contrib import admin
from django.urls import include, path

from flexmeter.api import api

urlpatterns = [
    path("v1/", api.urls),
    path("admin/", admin.site.urls),
    path("", include("flexmeter.web_urls")),
    path("catalog/", include("catalog.urls")),
    path("", include("metering.urls")),
]
