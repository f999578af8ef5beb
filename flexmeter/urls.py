from django.contrib import admin
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt

from flexmeter.api import api
from metering.api.ingest_view import ingest_event

api_urls = path("v1/", api.urls)

handler400 = "flexmeter.error_views.bad_request"
handler404 = "flexmeter.error_views.not_found"
handler500 = "flexmeter.error_views.server_error"


def post_or_api(post_view):
    """Serve POST with `post_view` and every other method with the ninja API, as if this route did not exist.

    For hot endpoints whose POST skips ninja (see metering/api/ingest_view.py) while the API keeps the path's other
    operations (GET /v1/events lists events) and documents the POST in its OpenAPI schema.
    """

    @csrf_exempt
    def view(request, *args, **kwargs):
        if request.method == "POST":
            return post_view(request, *args, **kwargs)
        match = api_urls.resolve(request.path_info.removeprefix("/"))
        return match.func(request, *match.args, **match.kwargs)

    return view


urlpatterns = [
    path("v1/events", post_or_api(ingest_event)),
    api_urls,
    path("admin/", admin.site.urls),
    path("", include("flexmeter.web_urls")),
    path("catalog/", include("catalog.urls")),
    path("", include("metering.urls")),
    path("", include("entitlements.urls")),
    path("", include("webhooks.urls")),
]
