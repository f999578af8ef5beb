"""Customers: CRUD, 409 on duplicate external id, external lookup, soft delete (SPEC §6.5)."""

import datetime as dt

import pytest

from flexmeter.errors import AlreadyExists, ValidationFailed
from metering.models import Customer, CustomerStatus
from metering.services import customer_clean, customer_create, customer_delete, customer_update
from tests.metering.factories import CustomerFactory, EventFactory

pytestmark = pytest.mark.django_db


def test_create_returns_201_with_defaults(api, environment):
    response = api.post("/v1/customers", {"external_id": "acme", "name": "Acme Inc."})
    assert response.status_code == 201
    body = response.json()
    assert body["id"].startswith("cust_")
    assert body["external_id"] == "acme"
    assert body["name"] == "Acme Inc."
    assert body["email"] == ""
    assert body["metadata"] == {}
    assert body["billing_period"] == "MONTHLY"
    assert body["billing_anchor"].endswith("Z")
    assert body["status"] == "active"
    assert body["environment_id"] == environment.public_id


def test_create_with_every_field(api):
    response = api.post(
        "/v1/customers",
        {
            "external_id": "acme",
            "name": "Acme",
            "email": "billing@acme.test",
            "metadata": {"plan": "pro"},
            "billing_anchor": "2026-01-15T00:00:00+01:00",
            "billing_period": "annual",
        },
    )
    assert response.status_code == 201
    body = response.json()
    assert body["billing_anchor"] == "2026-01-14T23:00:00Z"
    assert body["billing_period"] == "ANNUAL"
    assert body["metadata"] == {"plan": "pro"}
    assert body["email"] == "billing@acme.test"


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"name": "x"}, "external_id"),
        ({"external_id": "  ", "name": "x"}, "external_id"),
        ({"external_id": "a"}, "name"),
        ({"external_id": "a", "name": "x", "email": "not-an-email"}, "email"),
        ({"external_id": "a", "name": "x", "billing_period": "FORTNIGHTLY"}, "billing_period"),
        ({"external_id": "a", "name": "x", "billing_anchor": "2026-01-15"}, "billing_anchor"),
        ({"external_id": "a", "name": "x", "metadata": {"n": 1}}, "metadata.n"),
        ({"external_id": "a" * 256, "name": "x"}, "external_id"),
    ],
)
def test_create_validation_errors(api, body, path):
    response = api.post("/v1/customers", body)
    assert response.status_code == 400
    assert response.json()["code"] == "validation_error"
    assert path in response.json()["details"]
    assert not Customer.objects.exists()


def test_duplicate_external_id_is_409(api, other_api):
    assert api.post("/v1/customers", {"external_id": "acme", "name": "A"}).status_code == 201
    response = api.post("/v1/customers", {"external_id": "acme", "name": "B"})
    assert response.status_code == 409
    assert response.json()["code"] == "already_exists"
    assert response.json()["details"] == {"external_id": "already exists"}
    assert other_api.post("/v1/customers", {"external_id": "acme", "name": "other env"}).status_code == 201


def test_get_and_external_lookup(api, environment, other_environment):
    customer = CustomerFactory(environment=environment, external_id="acme")
    foreign = CustomerFactory(environment=other_environment, external_id="acme")
    assert api.get(f"/v1/customers/{customer.public_id}").json()["external_id"] == "acme"
    assert api.get("/v1/customers/external/acme").json()["id"] == customer.public_id
    assert api.get(f"/v1/customers/{foreign.public_id}").status_code == 404
    response = api.get("/v1/customers/external/nobody")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_list_paginates_newest_first(api, environment, other_environment):
    customers = [CustomerFactory(environment=environment) for _ in range(3)]
    CustomerFactory(environment=other_environment)
    CustomerFactory(environment=environment, status=CustomerStatus.DELETED)
    body = api.get("/v1/customers", {"limit": 2}).json()
    assert [item["id"] for item in body["items"]] == [customers[2].public_id, customers[1].public_id]
    assert body["pagination"] == {"total": 3, "limit": 2, "offset": 0}
    body = api.get("/v1/customers", {"limit": 2, "offset": 2}).json()
    assert [item["id"] for item in body["items"]] == [customers[0].public_id]
    assert api.get("/v1/customers", {"status": "all"}).json()["pagination"]["total"] == 4
    assert api.get("/v1/customers", {"external_id": customers[0].external_id}).json()["pagination"]["total"] == 1
    assert api.get("/v1/customers", {"limit": 101}).status_code == 400
    assert api.get("/v1/customers", {"status": "weird"}).status_code == 400


def test_update_changes_only_given_fields(api, environment):
    customer = CustomerFactory(environment=environment, external_id="acme", name="Acme", email="a@acme.test")
    response = api.put(f"/v1/customers/{customer.public_id}", {"name": "Acme 2", "billing_period": "weekly"})
    assert response.status_code == 200
    body = response.json()
    assert (body["name"], body["email"], body["billing_period"]) == ("Acme 2", "a@acme.test", "WEEKLY")
    assert api.put(f"/v1/customers/{customer.public_id}", {"name": ""}).status_code == 400
    assert api.put("/v1/customers/cust_nope", {"name": "x"}).status_code == 404


def test_update_to_a_taken_external_id_is_409(api, environment):
    CustomerFactory(environment=environment, external_id="taken")
    customer = CustomerFactory(environment=environment, external_id="mine")
    response = api.put(f"/v1/customers/{customer.public_id}", {"external_id": "taken"})
    assert response.status_code == 409
    customer.refresh_from_db()
    assert customer.external_id == "mine"


def test_delete_is_soft_and_keeps_events(api, environment):
    customer = CustomerFactory(environment=environment, external_id="acme")
    EventFactory(environment=environment, external_customer_id="acme")
    response = api.delete(f"/v1/customers/{customer.public_id}")
    assert response.status_code == 204  # Flexprice's SDK raises on anything but 204 No Content
    assert response.content == b""
    assert api.get(f"/v1/customers/{customer.public_id}").json()["status"] == "deleted"
    assert api.get("/v1/customers/external/acme").status_code == 404
    assert api.delete(f"/v1/customers/{customer.public_id}").status_code == 404
    assert api.put(f"/v1/customers/{customer.public_id}", {"name": "x"}).status_code == 404
    assert api.get("/v1/events").json()["events"][0]["customer_id"] is None
    # the external id is free again, and events resolve to the new customer
    new = api.post("/v1/customers", {"external_id": "acme", "name": "Acme again"}).json()
    assert api.get("/v1/events").json()["events"][0]["customer_id"] == new["id"]


def test_services_enforce_uniqueness_in_the_database(environment):
    customer_create(environment=environment, data={"external_id": "acme", "name": "A"})
    with pytest.raises(AlreadyExists):
        customer_create(environment=environment, data={"external_id": "acme", "name": "B"})
    other = customer_create(environment=environment, data={"external_id": "other", "name": "O"})
    with pytest.raises(AlreadyExists):
        customer_update(customer=other, data={"external_id": "acme"})
    customer_delete(customer=other)
    assert Customer.objects.get(pk=other.pk).status == CustomerStatus.DELETED


def test_customer_clean_rules():
    cleaned = customer_clean({"external_id": " acme ", "name": "A", "billing_anchor": None, "unknown": 1})
    assert cleaned == {"external_id": "acme", "name": "A"}
    cleaned = customer_clean({"billing_anchor": dt.datetime(2026, 1, 1, tzinfo=dt.UTC)}, partial=True)
    assert cleaned == {"billing_anchor": dt.datetime(2026, 1, 1, tzinfo=dt.UTC)}
    with pytest.raises(ValidationFailed) as excinfo:
        customer_clean({"metadata": {str(i): "v" for i in range(51)}}, partial=True)
    assert excinfo.value.details == {"metadata": "must have at most 50 keys"}
    with pytest.raises(ValidationFailed) as excinfo:
        customer_clean({"billing_anchor": dt.datetime(2026, 1, 1)}, partial=True)
    assert excinfo.value.details == {"billing_anchor": "must include a time zone"}


def test_customers_require_an_api_key(anonymous_api):
    assert anonymous_api.get("/v1/customers").status_code == 401
    assert anonymous_api.post("/v1/customers", {"external_id": "a", "name": "b"}).status_code == 401


def test_admin_lists_and_validates_customers(dashboard, environment):
    CustomerFactory(environment=environment, external_id="acme")
    assert dashboard.get("/admin/metering/customer/").status_code == 200
    response = dashboard.post(
        "/admin/metering/customer/add/",
        {
            "environment": environment.pk,
            "external_id": "acme",
            "name": "Dup",
            "email": "",
            "metadata": "{}",
            "billing_anchor_0": "2026-01-01",
            "billing_anchor_1": "00:00:00",
            "billing_period": "MONTHLY",
        },
    )
    assert response.status_code == 200  # form redisplayed with an error
    assert Customer.objects.filter(external_id="acme").count() == 1
    EventFactory(environment=environment)
    assert dashboard.get("/admin/metering/event/").status_code == 200


def test_text_the_database_cannot_store_is_400(api):
    response = api.post("/v1/customers", {"external_id": "a\u0000b", "name": "x"})
    assert response.status_code == 400
    assert response.json()["details"] == {"external_id": "must not contain NUL (\\u0000) characters"}
    response = api.post("/v1/customers", {"external_id": "a", "name": "x", "metadata": {"k": "v\u0000"}})
    assert response.status_code == 400
    assert response.json()["details"] == {"metadata.k": "must not contain NUL (\\u0000) characters"}


def test_lookups_with_nul_characters_are_404(api):
    assert api.get("/v1/customers/external/a%00b").status_code == 404
    assert api.get("/v1/customers/cust_%00").status_code == 404


def test_update_names_the_customer_by_query_parameter(api, environment, other_environment):
    customer = CustomerFactory(environment=environment, external_id="acme", name="Acme")
    foreign = CustomerFactory(environment=other_environment, external_id="acme", name="Foreign")
    response = api.put(f"/v1/customers?id={customer.public_id}", {"name": "By id"})
    assert (response.status_code, response.json()["name"]) == (200, "By id")
    response = api.put("/v1/customers?external_customer_id=acme", {"name": "By external id", "external_id": "acme-2"})
    assert response.status_code == 200
    assert (response.json()["name"], response.json()["external_id"]) == ("By external id", "acme-2")
    assert api.put("/v1/customers?external_id=acme-2", {"email": "a@acme.test"}).json()["email"] == "a@acme.test"
    foreign.refresh_from_db()
    assert (foreign.name, foreign.external_id) == ("Foreign", "acme")
    neither = api.put("/v1/customers", {"name": "x"})
    assert (neither.status_code, neither.json()["code"]) == (400, "validation_error")
    both = api.put(f"/v1/customers?id={customer.public_id}&external_customer_id=acme-2", {"name": "x"})
    assert both.status_code == 400
    assert api.put(f"/v1/customers?id={foreign.public_id}", {"name": "x"}).status_code == 404
    assert api.put("/v1/customers?external_customer_id=acme", {"name": "x"}).status_code == 404


def test_search_applies_every_filter(api, environment, other_environment):
    a = CustomerFactory(environment=environment, external_id="a", email="Ops@A.test", metadata={"tier": "gold"})
    b = CustomerFactory(environment=environment, external_id="b", metadata={"tier": "gold", "region": "eu"})
    c = CustomerFactory(environment=environment, external_id="c", metadata={"tier": "free"})
    gone = CustomerFactory(environment=environment, external_id="d", status=CustomerStatus.DELETED)
    CustomerFactory(environment=other_environment, external_id="a", metadata={"tier": "gold"})

    def ids(body: dict) -> list[str]:
        response = api.post("/v1/customers/search", body)
        assert response.status_code == 200, response.json()
        return [item["external_id"] for item in response.json()["items"]]

    assert ids({}) == ["c", "b", "a"]
    assert ids({"external_id": "b"}) == ["b"]
    assert ids({"external_ids": ["a", "c", "zzz"]}) == ["c", "a"]
    assert ids({"customer_ids": [a.public_id, gone.public_id]}) == ["a"]
    assert ids({"customer_ids": [gone.public_id], "status": "deleted"}) == ["d"]
    assert ids({"status": "published"}) == ["c", "b", "a"]
    assert ids({"status": "all"}) == ["d", "c", "b", "a"]
    assert ids({"email": "ops@a.test"}) == ["a"]
    assert ids({"metadata": {"tier": "gold"}}) == ["b", "a"]
    assert ids({"metadata": {"tier": "gold", "region": "eu"}}) == ["b"]
    assert ids({"order": "asc"}) == ["a", "b", "c"]
    assert ids({"sort": [{"field": "external_id", "direction": "desc"}]}) == ["c", "b", "a"]
    assert ids({"start_time": c.created_at.isoformat()}) == ["c"]
    assert ids({"end_time": b.created_at.isoformat()}) == ["a"]
    page = api.post("/v1/customers/search", {"limit": 1, "offset": 1}).json()
    assert [item["id"] for item in page["items"]] == [b.public_id]
    assert page["pagination"] == {"total": 3, "limit": 1, "offset": 1}


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"status": "archived"}, "status"),
        ({"order": "sideways"}, "order"),
        ({"sort": [{"field": "password", "direction": "asc"}]}, "sort[0].field"),
        ({"filters": [{"field": "name", "operator": "eq", "value": "x"}]}, "filters"),
        ({"start_time": "2026-01-01T00:00:00"}, "start_time"),
        ({"limit": 0}, "limit"),
    ],
)
def test_search_rejects_what_it_cannot_honour(api, body, path):
    response = api.post("/v1/customers/search", body)
    assert response.status_code == 400
    assert path in response.json()["details"]
