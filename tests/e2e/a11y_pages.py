"""Every page the accessibility tests visit, in one list: a page added to the dashboard is added here.

Each entry is a name and a function from the seeded `A11yData` to a path. The tests run axe-core (WCAG 2.1 A and AA)
on each at 1280 px and 375 px wide, and check that none scrolls sideways at 768 px and 375 px.
"""

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote


@dataclass(frozen=True)
class A11yData:
    """The objects the page paths need, seeded by `a11y_data` in tests/e2e/test_accessibility.py."""

    feature: str  # public id of a published metered feature
    meter: str
    customer: str
    event_id: str
    unmatched_event_id: str
    draft: str  # public id of a draft feature whose every wizard step can be opened
    plan: str
    entitlement: str
    portal_token: str
    api_key: str  # raw key of the environment, for sending events
    webhook_endpoint: str
    webhook_message: str


Path = Callable[[A11yData], str]

# Signed-out pages, visited without a session.
PUBLIC_PAGES: list[tuple[str, Path]] = [
    ("login", lambda d: "/login/"),
    ("portal", lambda d: f"/portal/{d.portal_token}/"),
]

# Dashboard pages, visited signed in.
DASHBOARD_PAGES: list[tuple[str, Path]] = [
    ("home", lambda d: "/"),
    ("feature-list", lambda d: "/catalog/features/"),
    ("feature-detail", lambda d: f"/catalog/features/{d.feature}/"),
    ("feature-edit", lambda d: f"/catalog/features/{d.feature}/edit/"),
    ("wizard-basics-new", lambda d: "/catalog/features/new/"),
    *[
        (f"wizard-{step}", lambda d, step=step: f"/catalog/features/new/{d.draft}/{step}/")
        for step in ("basics", "event", "aggregation", "field", "reset", "units", "filters", "review")
    ],
    ("meter-list", lambda d: "/catalog/meters/"),
    ("meter-detail", lambda d: f"/catalog/meters/{d.meter}/"),
    ("plan-list", lambda d: "/catalog/plans/"),
    ("plan-new", lambda d: "/catalog/plans/new/"),
    ("plan-detail", lambda d: f"/catalog/plans/{d.plan}/"),
    ("plan-edit", lambda d: f"/catalog/plans/{d.plan}/edit/"),
    ("entitlement-new", lambda d: f"/catalog/plans/{d.plan}/entitlements/new/"),
    ("entitlement-edit", lambda d: f"/catalog/entitlements/{d.entitlement}/edit/"),
    ("customer-list", lambda d: "/customers/"),
    ("customer-new", lambda d: "/customers/new/"),
    ("customer-detail", lambda d: f"/customers/{d.customer}/"),
    ("customer-edit", lambda d: f"/customers/{d.customer}/edit/"),
    ("customer-access", lambda d: f"/customers/{d.customer}/access/?feature=api_calls"),
    ("usage-index", lambda d: "/usage/"),
    ("usage-feature", lambda d: f"/usage/features/{d.feature}/"),
    ("usage-feature-hourly", lambda d: f"/usage/features/{d.feature}/?window=7d&size=HOUR"),
    ("usage-customer", lambda d: f"/usage/customers/{d.customer}/"),
    ("debugger-stream", lambda d: "/events/"),
    ("debugger-stream-filtered", lambda d: "/events/?status=unmatched&range=30d"),
    ("debugger-detail", lambda d: f"/events/detail/?id={quote(d.event_id, safe='')}"),
    ("debugger-detail-unmatched", lambda d: f"/events/detail/?id={quote(d.unmatched_event_id, safe='')}"),
    ("debugger-unmatched", lambda d: "/events/unmatched/"),
    ("debugger-test", lambda d: "/events/test/"),
    ("api-keys", lambda d: "/settings/api-keys/"),
    ("environments", lambda d: "/settings/environments/"),
    ("webhooks", lambda d: "/settings/webhooks/"),
    ("webhook-endpoint", lambda d: f"/settings/webhooks/{d.webhook_endpoint}/"),
    ("webhook-delivery", lambda d: f"/settings/webhooks/deliveries/{d.webhook_message}/"),
]


def seed_a11y_data() -> A11yData:
    """A small demo environment (the `demo` command's catalog, customers and a few hundred events) plus a plan, a
    draft feature with every wizard step filled, and a portal link."""
    from catalog.models import Feature, FeatureStatus, MeterStatus
    from entitlements.services import entitlement_create, plan_create
    from flexmeter.models import Environment
    from metering.debugger.stream import event_stream_page
    from metering.demo_data import demo_seed
    from metering.models import Customer
    from metering.portal import portal_session_create
    from tests.catalog.factories import FeatureFactory, MeterFactory
    from tests.factories import ApiKeyFactory, EnvironmentFactory
    from webhooks.services import endpoint_create, endpoint_send_test

    environment = Environment.objects.filter(slug="production").first() or EnvironmentFactory(
        slug="production", name="Production"
    )
    EnvironmentFactory(slug="sandbox", name="Sandbox")
    demo_seed(environment=environment, events=1200, days=14)
    key = ApiKeyFactory(environment=environment, name="Backend")
    feature = Feature.objects.get(environment=environment, lookup_key="api_calls")
    customer = Customer.objects.filter(environment=environment).order_by("external_id").first()
    plan = plan_create(environment=environment, data={"name": "Starter"})
    entitlement = entitlement_create(
        environment=environment,
        data={"plan_id": plan.public_id, "feature_id": feature.public_id, "usage_limit": "1000"},
    )
    meter = MeterFactory(
        environment=environment,
        status=MeterStatus.DRAFT,
        name="",
        fingerprint="",
        event_name="gpu.used",
        aggregation_type="SUM",
        aggregation_field="hours",
    )
    draft = FeatureFactory(
        environment=environment, status=FeatureStatus.DRAFT, name="GPU hours", lookup_key="", meter=meter
    )
    endpoint = endpoint_create(
        environment=environment,
        data={"url": "https://hooks.example.com/flexmeter", "event_types": ["feature.usage.alert"]},
    )
    message = endpoint_send_test(endpoint=endpoint)
    newest = event_stream_page(environment=environment, page_size=1).rows[0].event
    unmatched = event_stream_page(environment=environment, status="unmatched", page_size=1).rows[0].event
    return A11yData(
        feature=feature.public_id,
        meter=feature.meter.public_id,
        customer=customer.public_id,
        event_id=newest.event_id,
        unmatched_event_id=unmatched.event_id,
        draft=draft.public_id,
        plan=plan.public_id,
        entitlement=entitlement.public_id,
        portal_token=portal_session_create(customer=customer).token,
        api_key=key.raw_key,
        webhook_endpoint=endpoint.public_id,
        webhook_message=message.public_id,
    )


def sign_in(page) -> None:
    """Sign in through the login form as a new user `admin` (the seeded environment is the current one)."""
    from tests.e2e.conftest import PASSWORD
    from tests.factories import UserFactory

    UserFactory(username="admin")
    page.goto("/login/")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", PASSWORD)
    page.click("button:has-text('Sign in')")
    page.wait_for_url(lambda url: "/login/" not in url)  # the dashboard's home, the overview
