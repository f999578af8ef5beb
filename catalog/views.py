"""Dashboard pages of the product catalog: features (list, detail, edit, archive, the Add Feature wizard) and meters."""

import re

from django.contrib import messages
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect, push_url

from catalog import selectors, wizard
from catalog.filtersets import FeatureFilterSet, MeterFilterSet
from catalog.forms import (
    FeatureBasicsForm,
    FeatureEditForm,
    FeatureFilterFormSet,
    FeatureFiltersAddForm,
    add_details_errors,
)
from catalog.models import HIDDEN_FEATURE_STATUSES, Feature, FeatureStatus, FeatureType, MeterStatus
from catalog.services import draft_discard, feature_publish, feature_update
from catalog.services import feature_archive as feature_archive_service
from flexmeter.dashboard import dashboard_view, paginate, render_page
from flexmeter.errors import AlreadyExists, FlexmeterError, NotFound, ValidationFailed

WIZARD_TEMPLATE = "catalog/feature_wizard.html"
FILTER_PATH = re.compile(r"^(?:meter\.)?filters\[(\d+)\]\.(key|operator|values)")


def _feature_or_404(request: HttpRequest, public_id: str) -> Feature:
    try:
        feature = selectors.feature_get(environment=request.environment, feature_id=public_id)
    except NotFound:
        raise Http404("No such feature in this environment") from None
    if feature.status == FeatureStatus.DELETED:
        raise Http404("This feature was deleted")
    return feature


# --- features ---------------------------------------------------------------------------------------------------


@require_GET
@dashboard_view
def feature_list(request: HttpRequest) -> HttpResponse:
    filterset = FeatureFilterSet(request.GET, queryset=selectors.feature_list(environment=request.environment))
    page = paginate(request, filterset.qs)
    context = {
        "filterset": filterset,
        "page": page,
        "is_filtered": any(request.GET.get(key) for key in ("q", "type", "status")),
        "drafts": list(wizard.draft_queryset(request.environment).order_by("-updated_at")[:5]),
    }
    return render_page(request, "catalog/feature_list.html", context, partial="feature-results")


@require_GET
@dashboard_view
def feature_detail(request: HttpRequest, public_id: str) -> HttpResponse:
    feature = _feature_or_404(request, public_id)
    if feature.status == FeatureStatus.DRAFT:
        return redirect(
            "catalog:feature_wizard_step", public_id=feature.public_id, step=wizard.furthest_step(feature).name
        )
    context = {"feature": feature, "meter": feature.meter, "activity": selectors.feature_activity(feature=feature)}
    return render(request, "catalog/feature_detail.html", context)


@dashboard_view
def feature_edit(request: HttpRequest, public_id: str) -> HttpResponse:
    feature = _feature_or_404(request, public_id)
    if feature.status == FeatureStatus.DRAFT:
        return redirect("catalog:feature_detail", public_id=feature.public_id)
    with_value = feature.type in {FeatureType.STATIC, FeatureType.CONFIG}
    form = FeatureEditForm(request.POST or None, initial=FeatureEditForm.initial_for(feature))
    meter = feature.meter if feature.type == FeatureType.METERED else None
    filters_form = (
        FeatureFiltersAddForm(request.POST or None, existing=list(meter.filters or []), prefix="filters")
        if meter is not None
        else None
    )
    if request.method == "POST" and form.is_valid() and (filters_form is None or filters_form.is_valid()):
        changes = form.as_changes(with_value=with_value)
        added = filters_form.as_filters() if filters_form is not None else []
        if added:
            changes["filters"] = added
        try:
            feature_update(feature=feature, data=changes)
        except ValidationFailed as exc:
            filter_errors = {path: text for path, text in exc.details.items() if path.startswith("filters")}
            other_errors = {path: text for path, text in exc.details.items() if not path.startswith("filters")}
            add_details_errors(form, other_errors, FeatureEditForm.error_paths)
            if filters_form is not None:
                add_details_errors(filters_form, filter_errors, filters_form.error_paths)
        except AlreadyExists as exc:  # the added filters make the meter a duplicate of another published one
            target = filters_form if filters_form is not None else form
            target.add_error(None, exc.message)
        else:
            messages.success(request, f"Saved changes to “{feature.name}”.")
            return redirect("catalog:feature_detail", public_id=feature.public_id)
    errors = form.errors or (filters_form is not None and filters_form.errors)
    context = {"feature": feature, "form": form, "with_value": with_value, "filters_form": filters_form}
    return render(request, "catalog/feature_edit.html", context, status=422 if errors else 200)


@require_POST
@dashboard_view
def feature_archive(request: HttpRequest, public_id: str) -> HttpResponse:
    """Archive a feature: it stays listed under Archived, its meter stops counting, its usage history stays."""
    feature = _feature_or_404(request, public_id)
    feature_archive_service(feature=feature)
    stopped = " and its meter stopped counting. Usage history stays queryable" if feature.meter_id else ""
    messages.success(request, f"“{feature.name}” was archived{stopped}.")
    return redirect("catalog:feature_detail", public_id=feature.public_id)


# --- the Add Feature wizard -------------------------------------------------------------------------------------


def _draft_or_404(request: HttpRequest, public_id: str) -> Feature:
    feature = Feature.objects.for_environment(request.environment).select_related("meter").filter(public_id=public_id)
    feature = feature.first()
    if feature is None or feature.status == FeatureStatus.DELETED:
        raise Http404("No such draft in this environment")
    return feature


def _step_url(feature: Feature, step: wizard.Step) -> str:
    return reverse("catalog:feature_wizard_step", kwargs={"public_id": feature.public_id, "step": step.name})


def _steps_nav(feature: Feature | None, current: wizard.Step) -> list[dict]:
    steps = wizard.steps_for(feature)
    names = [step.name for step in steps]
    reached = names.index(wizard.furthest_step(feature).name) if feature is not None else 0
    nav = []
    for index, step in enumerate(steps):
        state = "current" if step == current else ("done" if index <= reached else "todo")
        url = _step_url(feature, step) if feature is not None and index <= reached else None
        nav.append({"step": step, "number": index + 1, "state": state, "url": url})
    return nav


def _filters_formset_saved(feature: Feature):
    """The draft's saved filter rows (one empty row to start with)."""
    rows = [
        {"key": item["key"], "operator": item.get("operator", "in"), "values": ", ".join(item["values"])}
        for item in feature.meter.filters or []
    ]
    return FeatureFilterFormSet(initial=rows or [{"operator": "in"}], prefix="filters")


def _filters_formset_posted(request: HttpRequest):
    """The posted rows, and whether they were submitted to save (True) or only edited ("add"/"remove-N" buttons)."""
    formset = FeatureFilterFormSet(request.POST, prefix="filters")
    action = request.POST.get("action", "")
    if not action:
        return formset, True
    rows = [form.cleaned_data for form in formset.forms] if formset.is_valid() else []
    if action == "add":
        rows.append({"key": "", "operator": "in", "values": ""})
    elif action.removeprefix("remove-").isdigit():
        index = int(action.removeprefix("remove-"))
        rows = [row for position, row in enumerate(rows) if position != index]
    return FeatureFilterFormSet(initial=rows, prefix="filters"), False


def _save_filters(request: HttpRequest, feature: Feature, formset) -> Feature | None:
    """Save the filled rows; rule errors go onto the row and field they name (`filters[1].values`)."""
    if not formset.is_valid():
        return None
    filled = [(index, form) for index, form in enumerate(formset.forms) if not form.is_blank()]
    data = {"filters": [form.as_filter() for _, form in filled]}
    try:
        return wizard.step_submit(wizard.FILTERS, environment=request.environment, feature=feature, data=data)
    except ValidationFailed as exc:
        for path, message in exc.details.items():
            match = FILTER_PATH.match(path)
            text = message[:1].upper() + message[1:]
            if match and int(match.group(1)) < len(filled):
                filled[int(match.group(1))][1].add_error(match.group(2), text)
            else:
                formset.forms[0].add_error(None, f"{path}: {message}")
        return None


def _save_step(request: HttpRequest, feature: Feature | None, step: wizard.Step, form) -> Feature | None:
    """Validate one step with the catalog rules and save it on the draft; None (with form errors) when invalid."""
    try:
        return wizard.step_submit(step, environment=request.environment, feature=feature, data=form.cleaned_data)
    except ValidationFailed as exc:
        add_details_errors(form, exc.details, form.error_paths)
        return None


def _wizard_context(request: HttpRequest, feature: Feature | None, step: wizard.Step, **extra) -> dict:
    previous = wizard.step_before(feature, step)
    steps = _steps_nav(feature, step)
    return {
        "draft": feature,
        "meter": feature.meter if feature is not None else None,
        "step": step,
        "steps": steps,
        "step_number": next(item["number"] for item in steps if item["step"] == step),
        "step_count": len(wizard.steps_for(feature)),
        "previous_url": _step_url(feature, previous) if feature is not None and previous else None,
        "action_url": _step_url(feature, step) if feature is not None else reverse("catalog:feature_wizard_start"),
        "publish_errors": [],
        **step.context(request.environment, feature, extra.get("form")),
        **extra,
    }


def _render_step(request: HttpRequest, context: dict, *, status: int = 200, push: str | None = None) -> HttpResponse:
    response = render_page(request, WIZARD_TEMPLATE, context, partial="wizard-step", status=status)
    if push and request.htmx:
        push_url(response, push)
    return response


def _go_to(request: HttpRequest, feature: Feature, step: wizard.Step) -> HttpResponse:
    """After a valid POST: htmx gets the next step's fragment (and the URL pushed); plain forms get a redirect."""
    url = _step_url(feature, step)
    if not request.htmx:
        return redirect(url)
    feature = Feature.objects.select_related("meter").get(pk=feature.pk)
    form = step.form(initial=step.initial(feature)) if step.form is not None else None
    extra = {"form": form}
    if step == wizard.FILTERS:
        extra["formset"] = _filters_formset_saved(feature)
    return _render_step(request, _wizard_context(request, feature, step, **extra), push=url)


@dashboard_view
def feature_wizard_start(request: HttpRequest) -> HttpResponse:
    """Step 1 before any draft exists: a valid POST creates the draft and moves on to its next step."""
    form = FeatureBasicsForm(request.POST or None, initial=wizard.BASICS.initial(None))
    if request.method == "POST" and form.is_valid():
        feature = _save_step(request, None, wizard.BASICS, form)
        if feature is not None:
            return _go_to(request, feature, wizard.step_after(feature, wizard.BASICS))
    status = 422 if form.errors else 200
    return _render_step(request, _wizard_context(request, None, wizard.BASICS, form=form), status=status)


@dashboard_view
def feature_wizard_step(request: HttpRequest, public_id: str, step: str) -> HttpResponse:
    feature = _draft_or_404(request, public_id)
    if feature.status != FeatureStatus.DRAFT:
        return redirect("catalog:feature_detail", public_id=feature.public_id)
    current = wizard.STEPS_BY_NAME.get(step)
    if current is None or current not in wizard.steps_for(feature):
        return redirect(_step_url(feature, wizard.furthest_step(feature)))
    if current == wizard.REVIEW:
        return _review(request, feature)
    if current == wizard.FILTERS:
        formset, submitted = _filters_formset_posted(request) if request.method == "POST" else (None, False)
        formset = formset or _filters_formset_saved(feature)
        saved = _save_filters(request, feature, formset) if submitted else None
        if saved is not None:
            return _go_to(request, saved, wizard.step_after(saved, current))
        status = 422 if submitted else 200
        context = _wizard_context(request, feature, current, formset=formset)
        return _render_step(request, context, status=status, push=_step_url(feature, current))
    form = current.form(request.POST or None, initial=current.initial(feature))
    if request.method == "POST" and form.is_valid():
        saved = _save_step(request, feature, current, form)
        if saved is not None:
            return _go_to(request, saved, wizard.step_after(saved, current))
    status = 422 if form.errors else 200
    return _render_step(request, _wizard_context(request, feature, current, form=form), status=status)


def _review(request: HttpRequest, feature: Feature) -> HttpResponse:
    publish_errors = []
    if request.method == "POST":
        try:
            feature_publish(feature=feature)
        except (ValidationFailed, AlreadyExists) as exc:
            details = exc.details or {"": exc.message}
            for path, message in details.items():
                fix = wizard.step_for_error_path(path)
                field = path.removeprefix("meter.")
                text = exc.message if isinstance(exc, AlreadyExists) else f"{field.replace('_', ' ')}: {message}"
                publish_errors.append({"message": text, "step": fix, "url": _step_url(feature, fix)})
        except FlexmeterError as exc:
            publish_errors.append({"message": exc.message, "step": None, "url": None})
        else:
            messages.success(request, f"Feature “{feature.name}” is live. Send a test event to see it count.")
            url = reverse("catalog:feature_detail", kwargs={"public_id": feature.public_id})
            return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
    feature.refresh_from_db()
    context = _wizard_context(request, feature, wizard.REVIEW, publish_errors=publish_errors)
    return _render_step(request, context, status=422 if publish_errors else 200)


@require_GET
@dashboard_view
def feature_wizard_event_check(request: HttpRequest, public_id: str) -> HttpResponse:
    """The live notice under the event name input: other features on this event, near misses, warnings."""
    feature = _draft_or_404(request, public_id)
    notice = wizard.event_name_notice(
        environment=request.environment, event_name=request.GET.get("event_name", ""), exclude=feature
    )
    return render(request, "catalog/partials/event_notice.html", {"notice": notice})


@require_GET
@dashboard_view
def feature_wizard_lookup_key(request: HttpRequest) -> HttpResponse:
    """Live under the basics step: the lookup key the feature will get (typed or derived), whether a feature
    already holds it, and features with nearly the same name (an out-of-band swap under the name)."""
    draft_id = request.GET.get("draft", "")
    draft = (
        Feature.objects.for_environment(request.environment).filter(public_id=draft_id).first() if draft_id else None
    )
    notice = wizard.basics_notice(
        environment=request.environment,
        name=request.GET.get("name", ""),
        lookup_key=request.GET.get("lookup_key", ""),
        exclude=draft,
    )
    return render(request, "catalog/partials/lookup_key_preview.html", {**notice, "oob": True})


@require_POST
@dashboard_view
def feature_wizard_discard(request: HttpRequest, public_id: str) -> HttpResponse:
    feature = _draft_or_404(request, public_id)
    if feature.status == FeatureStatus.DRAFT:
        draft_discard(feature=feature)
        messages.info(request, f"Draft “{feature.name}” discarded.")
    return redirect("catalog:feature_list")


# --- meters -----------------------------------------------------------------------------------------------------


@require_GET
@dashboard_view
def meter_list(request: HttpRequest) -> HttpResponse:
    live = ~Q(features__status__in=HIDDEN_FEATURE_STATUSES)
    meters = (
        selectors.meter_list(environment=request.environment)
        .annotate(feature_count=Count("features", filter=live))
        .order_by("-created_at", "-id")
    )
    filterset = MeterFilterSet(request.GET, queryset=meters)
    context = {
        "filterset": filterset,
        "page": paginate(request, filterset.qs),
        "is_filtered": any(request.GET.get(key) for key in ("q", "aggregation_type", "status")),
    }
    return render_page(request, "catalog/meter_list.html", context, partial="meter-results")


@require_GET
@dashboard_view
def meter_detail(request: HttpRequest, public_id: str) -> HttpResponse:
    try:
        meter = selectors.meter_get(environment=request.environment, meter_id=public_id)
    except NotFound:
        raise Http404("No such meter in this environment") from None
    if meter.status == MeterStatus.DRAFT:
        raise Http404("Draft meters belong to an unfinished feature")
    features = meter.features.visible().order_by("name")
    return render(request, "catalog/meter_detail.html", {"meter": meter, "features": features})
