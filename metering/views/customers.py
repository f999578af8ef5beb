"""Dashboard pages for customers (the event debugger and usage pages live in their own modules)."""

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from catalog.forms import add_details_errors
from flexmeter.dashboard import dashboard_view, paginate, render_page
from flexmeter.errors import AlreadyExists, NotFound, ValidationFailed
from metering import selectors
from metering.debugger.explain import STATUS_PROCESSED
from metering.debugger.stream import event_stream_page
from metering.portal import portal_session_create, portal_sessions_revoke
from metering.services import customer_create, customer_update
from metering.usage.dashboard import CUSTOMER_ACTIVITY_DAYS, customer_list_activity
from metering.views.filtersets import CustomerFilterSet
from metering.views.forms import CustomerCreateForm, CustomerEditForm

RECENT_EVENTS = 10


@require_GET
@dashboard_view
def customer_list(request: HttpRequest) -> HttpResponse:
    filterset = CustomerFilterSet(request.GET, queryset=selectors.customer_list(environment=request.environment))
    page = paginate(request, filterset.qs)
    activity = customer_list_activity(environment=request.environment, customers=list(page.object_list))
    context = {
        "filterset": filterset,
        "page": page,
        "rows": [(customer, activity[customer.external_id]) for customer in page.object_list],
        "activity_days": CUSTOMER_ACTIVITY_DAYS,
        "is_filtered": any(request.GET.get(key) for key in ("q", "billing_period")),
    }
    return render_page(request, "metering/customer_list.html", context, partial="customer-results")


@dashboard_view
def customer_create_view(request: HttpRequest) -> HttpResponse:
    form = CustomerCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            customer = customer_create(environment=request.environment, data=form.as_data())
        except (ValidationFailed, AlreadyExists) as exc:
            add_details_errors(form, exc.details or {"": exc.message}, CustomerCreateForm.error_paths)
        else:
            messages.success(request, f"Customer “{customer}” created.")
            return redirect("metering:customer_detail", public_id=customer.public_id)
    status = 422 if form.errors else 200
    return render(request, "metering/customer_create.html", {"form": form}, status=status)


def _active_customer_or_404(request: HttpRequest, public_id: str):
    try:
        return selectors.customer_get_active(environment=request.environment, customer_id=public_id)
    except NotFound:
        raise Http404("No such customer in this environment") from None


@require_GET
@dashboard_view
def customer_detail(request: HttpRequest, public_id: str) -> HttpResponse:
    customer = _active_customer_or_404(request, public_id)
    recent = event_stream_page(
        environment=request.environment, external_customer_id=customer.external_id, page_size=RECENT_EVENTS
    )
    problems = sum(row.status != STATUS_PROCESSED for row in recent.rows)
    context = {"customer": customer, "rows": recent.rows, "problems": problems}
    return render(request, "metering/customer_detail.html", context)


@dashboard_view
def customer_edit_view(request: HttpRequest, public_id: str) -> HttpResponse:
    customer = _active_customer_or_404(request, public_id)
    form = CustomerEditForm(request.POST or None, initial=CustomerEditForm.initial_for(customer))
    if request.method == "POST" and form.is_valid():
        try:
            customer = customer_update(customer=customer, data=form.as_data())
        except (ValidationFailed, AlreadyExists) as exc:
            add_details_errors(form, exc.details or {"": exc.message}, CustomerEditForm.error_paths)
        else:
            messages.success(request, f"Saved changes to “{customer}”.")
            return redirect("metering:customer_detail", public_id=customer.public_id)
    status = 422 if form.errors else 200
    return render(request, "metering/customer_edit.html", {"form": form, "customer": customer}, status=status)


@require_POST
@dashboard_view
def customer_portal_open(request: HttpRequest, public_id: str) -> HttpResponse:
    """A fresh portal link for the customer, opened right away (to see what the customer sees)."""
    session = portal_session_create(customer=_active_customer_or_404(request, public_id))
    return redirect(reverse("flexmeter:portal", args=[session.token]))


@require_POST
@dashboard_view
def customer_portal_revoke(request: HttpRequest, public_id: str) -> HttpResponse:
    customer = portal_sessions_revoke(customer=_active_customer_or_404(request, public_id))
    messages.success(request, f"Every portal link issued so far for “{customer}” stopped working.")
    return redirect("metering:customer_detail", public_id=customer.public_id)
