"""Dashboard pages of plans (list, detail with entitlements, create/edit with live validation, archive), and a
customer's subscriptions and access (subscribe, end, check access). Views parse a form, call one service or
selector, render."""

from __future__ import annotations

from django.contrib import messages
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils import timezone
from django.views.decorators.http import require_POST

from catalog.forms import add_details_errors
from catalog.models import Feature, FeatureStatus
from entitlements import selectors, services
from entitlements.forms import AccessCheckForm, EntitlementForm, PlanForm, SubscribeForm
from entitlements.models import Entitlement, Plan, PlanStatus
from entitlements.rules import plan_clean
from flexmeter.dashboard import dashboard_view, paginate, render_page
from flexmeter.errors import FlexmeterError, NotFound, ValidationFailed
from metering.selectors import customer_get_active


def _plan_or_404(request: HttpRequest, public_id: str) -> Plan:
    try:
        return selectors.plan_get(environment=request.environment, plan_id=public_id)
    except NotFound:
        raise Http404("No such plan in this environment") from None


def _customer_or_404(request: HttpRequest, public_id: str):
    try:
        return customer_get_active(environment=request.environment, customer_id=public_id)
    except NotFound:
        raise Http404("No such customer in this environment") from None


@dashboard_view
def plan_list(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    plans = selectors.plan_list(environment=request.environment).annotate(
        entitlement_count=Count("entitlements", distinct=True),
        active_subscriptions=Count(
            "subscriptions",
            filter=Q(subscriptions__start_date__lte=now)
            & (Q(subscriptions__end_date__isnull=True) | Q(subscriptions__end_date__gt=now)),
            distinct=True,
        ),
    )
    return render_page(request, "entitlements/plan_list.html", {"page": paginate(request, plans)})


def _plan_form_page(request: HttpRequest, form: PlanForm, *, plan: Plan | None, status: int = 200) -> HttpResponse:
    return render_page(
        request, "entitlements/plan_form.html", {"form": form, "plan": plan}, partial="plan-form", status=status
    )


def _plan_save(request: HttpRequest, plan: Plan | None) -> HttpResponse:
    initial = PlanForm.initial_for(plan) if plan else None
    form = PlanForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            if plan is None:
                plan = services.plan_create(environment=request.environment, data=form.as_data())
            else:
                plan = services.plan_update(plan=plan, data=form.as_data())
        except FlexmeterError as exc:
            add_details_errors(form, exc.details or {"name": exc.message}, PlanForm.error_paths)
        else:
            messages.success(request, f"Saved plan “{plan.name}”.")
            return redirect("entitlements:plan_detail", public_id=plan.public_id)
    return _plan_form_page(request, form, plan=plan, status=422 if form.errors else 200)


@dashboard_view
def plan_create(request: HttpRequest) -> HttpResponse:
    return _plan_save(request, None)


@dashboard_view
def plan_edit(request: HttpRequest, public_id: str) -> HttpResponse:
    return _plan_save(request, _plan_or_404(request, public_id))


@require_POST
@dashboard_view
def plan_validate(request: HttpRequest) -> HttpResponse:
    """Live validation while typing: the same rules as saving, without saving (and the derived lookup key)."""
    form = PlanForm(request.POST)
    form.is_valid()
    derived = ""
    try:
        derived = plan_clean(form.as_data())["lookup_key"]
    except ValidationFailed as exc:
        touched = {name for name in PlanForm.error_paths if request.POST.get(name)}
        details = {path: message for path, message in exc.details.items() if path in touched}
        add_details_errors(form, details, PlanForm.error_paths)
    plan = None
    if request.POST.get("plan"):
        plan = Plan.objects.for_environment(request.environment).filter(public_id=request.POST["plan"]).first()
    taken = (
        Plan.objects.for_environment(request.environment)
        .filter(lookup_key=derived)
        .exclude(pk=getattr(plan, "pk", None))
        .exists()
    )
    if derived and taken:
        form.add_error("lookup_key", f"“{derived}” is already used by another plan")
    return render_page(
        request,
        "entitlements/plan_form.html",
        {"form": form, "plan": plan, "derived_lookup_key": derived},
        partial="plan-form",
    )


@dashboard_view
def plan_detail(request: HttpRequest, public_id: str) -> HttpResponse:
    plan = _plan_or_404(request, public_id)
    entitlements = list(selectors.entitlement_list(environment=request.environment, plan=plan))
    on_plan = {entitlement.feature_id for entitlement in entitlements}
    features = [
        feature
        for feature in Feature.objects.for_environment(request.environment)
        .filter(status=FeatureStatus.PUBLISHED)
        .order_by("name")
        if feature.pk not in on_plan
    ]
    subscriptions = selectors.subscription_list(environment=request.environment, plan=plan)
    context = {
        "plan": plan,
        "entitlements": entitlements,
        "form": EntitlementForm(features=features),
        "features": features,
        "subscriptions": subscriptions[:50],
        "now": timezone.now(),
    }
    return render_page(request, "entitlements/plan_detail.html", context)


@require_POST
@dashboard_view
def plan_archive(request: HttpRequest, public_id: str) -> HttpResponse:
    plan = services.plan_archive(plan=_plan_or_404(request, public_id))
    messages.success(request, f"“{plan.name}” was archived: it takes no new subscriptions; current ones keep it.")
    return redirect("entitlements:plan_detail", public_id=plan.public_id)


@dashboard_view
def entitlement_create(request: HttpRequest, public_id: str) -> HttpResponse:
    plan = _plan_or_404(request, public_id)
    if request.method != "POST":
        return redirect("entitlements:plan_detail", public_id=plan.public_id)
    features = list(Feature.objects.for_environment(request.environment).filter(status=FeatureStatus.PUBLISHED))
    form = EntitlementForm(request.POST, features=features)
    form.is_valid()
    chosen = next((f for f in features if f.public_id == form.cleaned_data.get("feature")), None)
    try:
        services.entitlement_create(
            environment=request.environment,
            data={"plan_id": plan.public_id, **form.as_data(feature_type=chosen.type if chosen else None)},
        )
    except FlexmeterError as exc:
        add_details_errors(form, exc.details or {"feature_id": exc.message}, EntitlementForm.error_paths)
        context = {"plan": plan, "form": form, "features": features, "entitlements": None}
        return render_page(request, "entitlements/entitlement_form.html", context, status=422)
    messages.success(request, f"Added “{chosen.name}” to {plan.name}.")
    return redirect("entitlements:plan_detail", public_id=plan.public_id)


def _entitlement_or_404(request: HttpRequest, public_id: str) -> Entitlement:
    try:
        return selectors.entitlement_get(environment=request.environment, entitlement_id=public_id)
    except NotFound:
        raise Http404("No such entitlement in this environment") from None


@dashboard_view
def entitlement_edit(request: HttpRequest, public_id: str) -> HttpResponse:
    entitlement = _entitlement_or_404(request, public_id)
    form = EntitlementForm(request.POST or None, initial=EntitlementForm.initial_for(entitlement))
    if request.method == "POST" and form.is_valid():
        try:
            services.entitlement_update(
                entitlement=entitlement, data=form.as_data(feature_type=entitlement.feature.type)
            )
        except FlexmeterError as exc:
            add_details_errors(form, exc.details, EntitlementForm.error_paths)
        else:
            messages.success(request, f"Saved “{entitlement.feature.name}” on {entitlement.plan.name}.")
            return redirect("entitlements:plan_detail", public_id=entitlement.plan.public_id)
    context = {"plan": entitlement.plan, "entitlement": entitlement, "form": form}
    return render_page(request, "entitlements/entitlement_form.html", context, status=422 if form.errors else 200)


@require_POST
@dashboard_view
def entitlement_delete(request: HttpRequest, public_id: str) -> HttpResponse:
    entitlement = _entitlement_or_404(request, public_id)
    services.entitlement_delete(entitlement=entitlement)
    messages.success(request, f"Removed “{entitlement.feature.name}” from {entitlement.plan.name}.")
    return redirect("entitlements:plan_detail", public_id=entitlement.plan.public_id)


@require_POST
@dashboard_view
def customer_subscribe(request: HttpRequest, public_id: str) -> HttpResponse:
    customer = _customer_or_404(request, public_id)
    plans = list(selectors.plan_list(environment=request.environment, status=PlanStatus.PUBLISHED))
    form = SubscribeForm(request.POST, plans=plans)
    form.is_valid()
    try:
        services.subscription_create(
            environment=request.environment,
            data={"customer_id": customer.public_id, "plan_id": form.cleaned_data.get("plan") or None},
        )
    except FlexmeterError as exc:
        messages.error(request, "; ".join(exc.details.values()) or exc.message)
    else:
        messages.success(request, f"{customer} is now subscribed.")
    return redirect("metering:customer_detail", public_id=customer.public_id)


@require_POST
@dashboard_view
def subscription_end(request: HttpRequest, public_id: str) -> HttpResponse:
    try:
        subscription = selectors.subscription_get(environment=request.environment, subscription_id=public_id)
    except NotFound:
        raise Http404("No such subscription in this environment") from None
    services.subscription_cancel(subscription=subscription)
    messages.success(request, f"Ended the subscription to {subscription.plan.name}.")
    return redirect("metering:customer_detail", public_id=subscription.customer.public_id)


@dashboard_view
def customer_access_check(request: HttpRequest, public_id: str) -> HttpResponse:
    """The "check access" box: the same answer as GET /v1/customers/{id}/entitlements/{feature}."""
    customer = _customer_or_404(request, public_id)
    form = AccessCheckForm(request.GET or None)
    answer = None
    if form.is_valid() and form.cleaned_data["feature"]:
        answer = selectors.customer_feature_access(customer=customer, feature_ref=form.cleaned_data["feature"].strip())
    context = {"customer": customer, "form": form, "answer": answer}
    return render_page(request, "entitlements/access_check.html", context, partial="access-answer")
