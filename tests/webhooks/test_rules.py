import pytest

from flexmeter.errors import ValidationFailed
from webhooks.rules import EndpointValues, endpoint_clean


def details(data, **kwargs):
    with pytest.raises(ValidationFailed) as caught:
        endpoint_clean(data, **kwargs)
    return caught.value.details


def test_a_valid_endpoint_is_normalized():
    values = endpoint_clean(
        {
            "url": "  https://hooks.example.com/flexmeter?x=1  ",
            "description": " billing ",
            "event_types": ["events.unmatched", "feature.usage.alert", "feature.usage.alert"],
        }
    )
    assert values == EndpointValues(
        url="https://hooks.example.com/flexmeter?x=1",
        description="billing",
        event_types=["feature.usage.alert", "events.unmatched"],
        enabled=True,
    )
    assert endpoint_clean({"url": "http://127.0.0.1:8080/in", "event_types": "events.unmatched"}).event_types == [
        "events.unmatched"
    ]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (None, "is required: an http:// or https:// URL"),
        ("", "is required: an http:// or https:// URL"),
        ("ftp://example.com/x", "must start with http:// or https://"),
        ("javascript:alert(1)", "must start with http:// or https://"),
        ("example.com/hook", "must start with http:// or https://"),
        ("https://", "must be a valid http:// or https:// URL with a host"),
        ("https://exa mple.com/", "must be a valid http:// or https:// URL with a host"),
        ("https://example.com/\x00", "must not contain NUL (\\u0000) characters"),
        ("https://example.com/" + "a" * 2000, "must be at most 2000 characters"),
        (42, "is required: an http:// or https:// URL"),
    ],
)
def test_bad_urls(url, message):
    assert details({"url": url, "event_types": ["feature.usage.alert"]}) == {"url": message}


def test_bad_event_types_enabled_and_description_are_all_named():
    assert details({"url": "https://example.com", "event_types": [], "enabled": "yes", "description": 5}) == {
        "event_types": "must be a non-empty list of event types: feature.usage.alert, "
        "entitlement.usage_limit_reached, events.unmatched",
        "enabled": "must be true or false",
        "description": "must be a string",
    }
    assert details({"url": "https://example.com", "event_types": ["feature.alert"]}) == {
        "event_types": "unknown event type 'feature.alert': choose among feature.usage.alert, "
        "entitlement.usage_limit_reached, events.unmatched"
    }


def test_update_keeps_what_is_not_given():
    current = EndpointValues(url="https://a.example", description="d", event_types=["events.unmatched"], enabled=True)
    assert endpoint_clean({"enabled": False}, current=current) == EndpointValues(
        url="https://a.example", description="d", event_types=["events.unmatched"], enabled=False
    )
    assert details({"url": "nope"}, current=current) == {"url": "must start with http:// or https://"}
