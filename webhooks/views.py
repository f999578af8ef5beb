"""Settings → Webhooks: endpoints of the current environment, their delivery log, resend and test events."""

from __future__ import annotations

import json
from dataclasses import asdict

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from flexmeter.dashboard import dashboard_view, paginate
from flexmeter.errors import FlexmeterError
from webhooks import selectors, services
from webhooks.forms import WebhookEndpointForm

REVEAL_SESSION_KEY = "webhooks.reveal_secret"


@dashboard_view
def endpoint_list(request: HttpRequest, form: WebhookEndpointForm | None = None) -> HttpResponse:
    endpoints = selectors.endpoint_list(environment=request.environment)
    context = {"page": paginate(request, endpoints), "form": form or WebhookEndpointForm()}
    return render(request, "webhooks/endpoint_list.html", context, status=400 if form else 200)


@require_POST
@dashboard_view
def endpoint_create(request: HttpRequest) -> HttpResponse:
    form = WebhookEndpointForm(request.POST)
    if not form.is_valid():
        return endpoint_list(request, form=form)
    endpoint = services.endpoint_create(environment=request.environment, data=asdict(form.cleaned_data["values"]))
    # In the session for exactly one page view: the detail page pops it, so a reload never shows the secret again.
    request.session[REVEAL_SESSION_KEY] = {"endpoint": endpoint.public_id, "secret": endpoint.secret}
    return redirect("webhooks:endpoint_detail", endpoint_id=endpoint.public_id)


@dashboard_view
def endpoint_detail(request: HttpRequest, endpoint_id: str) -> HttpResponse:
    endpoint = selectors.endpoint_get(environment=request.environment, endpoint_id=endpoint_id)
    reveal = request.session.pop(REVEAL_SESSION_KEY, None)
    if reveal and reveal.get("endpoint") != endpoint.public_id:
        reveal = None
    deliveries = selectors.message_list(environment=request.environment, endpoint=endpoint)
    context = {
        "endpoint": endpoint,
        "reveal": reveal,
        "stats": selectors.endpoint_stats(endpoint=endpoint),
        "page": paginate(request, deliveries),
    }
    return render(request, "webhooks/endpoint_detail.html", context)


@dashboard_view
def message_detail(request: HttpRequest, message_id: str) -> HttpResponse:
    message = selectors.message_get(environment=request.environment, message_id=message_id)
    context = {
        "message": message,
        "endpoint": message.endpoint,
        "attempts": selectors.attempt_list(message=message),
        "body": json.dumps(message.envelope(), indent=2, ensure_ascii=False),
    }
    return render(request, "webhooks/message_detail.html", context)


def _act(request: HttpRequest, action, done: str) -> None:
    try:
        action()
    except FlexmeterError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, done)


@require_POST
@dashboard_view
def endpoint_send_test(request: HttpRequest, endpoint_id: str) -> HttpResponse:
    endpoint = selectors.endpoint_get(environment=request.environment, endpoint_id=endpoint_id)
    _act(request, lambda: services.endpoint_send_test(endpoint=endpoint), "Test event queued: it is sent right away.")
    return redirect("webhooks:endpoint_detail", endpoint_id=endpoint.public_id)


@require_POST
@dashboard_view
def endpoint_toggle(request: HttpRequest, endpoint_id: str) -> HttpResponse:
    endpoint = selectors.endpoint_get(environment=request.environment, endpoint_id=endpoint_id)
    enable = not endpoint.enabled
    services.endpoint_update(endpoint=endpoint, data={"enabled": enable})
    messages.success(request, "Endpoint enabled: due deliveries resume." if enable else "Endpoint disabled.")
    return redirect("webhooks:endpoint_detail", endpoint_id=endpoint.public_id)


@require_POST
@dashboard_view
def endpoint_rotate_secret(request: HttpRequest, endpoint_id: str) -> HttpResponse:
    endpoint = selectors.endpoint_get(environment=request.environment, endpoint_id=endpoint_id)
    services.endpoint_rotate_secret(endpoint=endpoint)
    request.session[REVEAL_SESSION_KEY] = {"endpoint": endpoint.public_id, "secret": endpoint.secret}
    return redirect("webhooks:endpoint_detail", endpoint_id=endpoint.public_id)


@require_POST
@dashboard_view
def endpoint_delete(request: HttpRequest, endpoint_id: str) -> HttpResponse:
    endpoint = selectors.endpoint_get(environment=request.environment, endpoint_id=endpoint_id)
    services.endpoint_delete(endpoint=endpoint)
    messages.success(request, f"Endpoint {endpoint.url} deleted.")
    return redirect("webhooks:endpoint_list")


@require_POST
@dashboard_view
def message_resend(request: HttpRequest, message_id: str) -> HttpResponse:
    message = selectors.message_get(environment=request.environment, message_id=message_id)
    _act(request, lambda: services.message_resend(message=message), f"{message.public_id} queued to be sent again.")
    if request.POST.get("back") == "message":
        return redirect("webhooks:message_detail", message_id=message.public_id)
    return redirect("webhooks:endpoint_detail", endpoint_id=message.endpoint.public_id)
