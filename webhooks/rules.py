"""Validation of webhook endpoints, shared by the API, the dashboard form and admin: raw input in, normalized values
out, or `ValidationFailed(details={field: message})` naming every offending field."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator

from flexmeter.errors import ValidationFailed
from flexmeter.text import text_problem
from webhooks.models import EventType

URL_MAX_LENGTH = 2000
DESCRIPTION_MAX_LENGTH = 255
_url_validator = URLValidator(schemes=["http", "https"])


@dataclass(frozen=True)
class EndpointValues:
    url: str
    description: str
    event_types: list[str]
    enabled: bool


def url_clean(value: Any) -> str:
    """An absolute http or https URL with a host; raises ValueError with the reason otherwise."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError("is required: an http:// or https:// URL")
    url = value.strip()
    if len(url) > URL_MAX_LENGTH:
        raise ValueError(f"must be at most {URL_MAX_LENGTH} characters")
    if problem := text_problem(url):
        raise ValueError(problem)
    if urlsplit(url).scheme.lower() not in {"http", "https"}:
        raise ValueError("must start with http:// or https://")
    try:
        _url_validator(url)
    except ValidationError:
        raise ValueError("must be a valid http:// or https:// URL with a host") from None
    return url


def event_types_clean(value: Any) -> list[str]:
    """A non-empty list of known event types, without repeats, in the order of `EventType`."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not value:
        raise ValueError(f"must be a non-empty list of event types: {', '.join(EventType.values)}")
    unknown = [item for item in value if item not in EventType.values]
    if unknown:
        raise ValueError(f"unknown event type {unknown[0]!r}: choose among {', '.join(EventType.values)}")
    return [event_type for event_type in EventType.values if event_type in value]


def endpoint_clean(data: dict[str, Any], *, current: EndpointValues | None = None) -> EndpointValues:
    """Validate a whole endpoint (create) or the given fields over `current` (update)."""
    if not isinstance(data, dict):
        raise ValidationFailed(details={"body": "must be a JSON object"})
    errors: dict[str, str] = {}
    url = current.url if current else ""
    if "url" in data or current is None:
        try:
            url = url_clean(data.get("url"))
        except ValueError as exc:
            errors["url"] = str(exc)
    description = current.description if current else ""
    if data.get("description") is not None:
        raw = data["description"]
        if not isinstance(raw, str):
            errors["description"] = "must be a string"
        elif len(raw) > DESCRIPTION_MAX_LENGTH:
            errors["description"] = f"must be at most {DESCRIPTION_MAX_LENGTH} characters"
        elif problem := text_problem(raw):
            errors["description"] = problem
        else:
            description = raw.strip()
    event_types = current.event_types if current else []
    if "event_types" in data or current is None:
        try:
            event_types = event_types_clean(data.get("event_types"))
        except ValueError as exc:
            errors["event_types"] = str(exc)
    enabled = current.enabled if current else True
    if data.get("enabled") is not None:
        if isinstance(data["enabled"], bool):
            enabled = data["enabled"]
        else:
            errors["enabled"] = "must be true or false"
    if errors:
        raise ValidationFailed(details=errors)
    return EndpointValues(url=url, description=description, event_types=event_types, enabled=enabled)
