"""Helpers every dashboard view shares: login + current environment, htmx-aware rendering, pagination."""

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.paginator import Page, Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from flexmeter.services import environment_get_or_create

PAGE_SIZE = 25


def dashboard_view(view: Callable) -> Callable:
    """Require a signed-in user and guarantee `request.environment`: a fresh install gets `production` on first use."""

    @login_required
    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if getattr(request, "environment", None) is None:
            request.environment = environment_get_or_create(slug="production", name="Production")
        return view(request, *args, **kwargs)

    return wrapper


def render_page(request: HttpRequest, template: str, context: dict, *, partial: str | None = None, **kwargs):
    """Render the whole page, or only `template#partial` when htmx asks for the swappable region."""
    if partial and getattr(request, "htmx", False) and not request.htmx.boosted:
        return render(request, f"{template}#{partial}", context, **kwargs)
    return render(request, template, context, **kwargs)


def paginate(request: HttpRequest, queryset: QuerySet, *, per_page: int = PAGE_SIZE) -> Page:
    """The requested page of `queryset`; a page number out of range or garbage falls back to the nearest page."""
    return Paginator(queryset, per_page).get_page(request.GET.get("page"))
