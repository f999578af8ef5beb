"""Dashboard pages shared by every app: API keys, environments and the environment switcher."""

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from flexmeter.dashboard import dashboard_view, paginate
from flexmeter.forms import ApiKeyCreateForm, EnvironmentCreateForm, EnvironmentSwitchForm
from flexmeter.middleware import SESSION_ENVIRONMENT_KEY
from flexmeter.models import ApiKey, Environment
from flexmeter.services import api_key_create, api_key_revoke, environment_get_or_create

REVEAL_SESSION_KEY = "api_key_reveal"


@dashboard_view
def api_key_list(request: HttpRequest, form: ApiKeyCreateForm | None = None) -> HttpResponse:
    reveal = request.session.pop(REVEAL_SESSION_KEY, None)
    keys = ApiKey.objects.for_environment(request.environment).order_by("revoked_at", "-created_at", "-id")
    context = {"page": paginate(request, keys), "form": form or ApiKeyCreateForm(), "reveal": reveal}
    return render(request, "flexmeter/api_key_list.html", context, status=400 if form else 200)


@require_POST
@dashboard_view
def api_key_create_view(request: HttpRequest) -> HttpResponse:
    form = ApiKeyCreateForm(request.POST)
    if not form.is_valid():
        return api_key_list(request, form=form)
    api_key, raw_key = api_key_create(environment=request.environment, name=form.cleaned_data["name"])
    # Kept in the session for exactly one page view: the list pops it, so a reload never shows the secret again.
    request.session[REVEAL_SESSION_KEY] = {"id": api_key.pk, "name": api_key.name, "key": raw_key}
    return redirect("flexmeter:api_key_list")


@require_POST
@dashboard_view
def api_key_revoke_view(request: HttpRequest, pk: int) -> HttpResponse:
    api_key = get_object_or_404(ApiKey.objects.for_environment(request.environment), pk=pk)
    was_active = api_key.is_active
    api_key_revoke(api_key=api_key)
    if was_active:
        messages.success(request, f"API key “{api_key.name}” revoked. Requests using it now get 401.")
    return redirect("flexmeter:api_key_list")


@dashboard_view
def environment_list(request: HttpRequest, form: EnvironmentCreateForm | None = None) -> HttpResponse:
    environments = Environment.objects.order_by("created_at", "id")
    context = {"page": paginate(request, environments), "form": form or EnvironmentCreateForm()}
    return render(request, "flexmeter/environment_list.html", context, status=400 if form else 200)


@require_POST
@dashboard_view
def environment_create(request: HttpRequest) -> HttpResponse:
    form = EnvironmentCreateForm(request.POST)
    if not form.is_valid():
        return environment_list(request, form=form)
    environment = environment_get_or_create(slug=form.cleaned_data["slug"], name=form.cleaned_data["name"])
    messages.success(request, f"Environment “{environment.name}” created. Switch to it from the sidebar.")
    return redirect("flexmeter:environment_list")


@require_POST
@dashboard_view
def environment_switch(request: HttpRequest) -> HttpResponse:
    form = EnvironmentSwitchForm(request.POST)
    if not form.is_valid():
        messages.error(request, "That environment does not exist any more.")
        return redirect("flexmeter:home")
    request.session[SESSION_ENVIRONMENT_KEY] = form.cleaned_data["environment"].pk
    target = form.cleaned_data["next"]
    allowed = url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=False)
    return redirect(target if target and allowed else reverse("flexmeter:home"))
