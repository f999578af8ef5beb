"""POST /v1/events as a plain Django view: the hottest endpoint, one event per request (SPEC §6.2).

It answers exactly as the ninja operation documented in `metering/api.py` (same 202 body, same error envelope,
401 before any body error) but skips what a single event does not need: ninja's operation machinery, a separate
API-key lookup and an explicit transaction. The key is checked by the same statement that writes the event
(`events_store_for_key`), in autocommit, so 202 still means committed and a revoked key is refused at once.
`flexmeter/urls.py` mounts it ahead of the ninja API for POST only.
"""

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from flexmeter.auth import raw_key_from_request, unauthorized_response
from flexmeter.envelope import error_response
from flexmeter.errors import FlexmeterError
from flexmeter.services import api_key_authenticate
from metering.api.http import json_response, request_json
from metering.ingest.validation import event_clean
from metering.ingest.writer import events_store_for_key


@csrf_exempt
def ingest_event(request: HttpRequest) -> HttpResponse:
    raw_key = raw_key_from_request(request)
    if not raw_key:
        return unauthorized_response()
    try:
        event = event_clean(request_json(request))
    except FlexmeterError as exc:
        # A bad key is a 401 whatever the body, as on every other endpoint.
        if api_key_authenticate(raw_key) is None:
            return unauthorized_response()
        return error_response(code=exc.code, message=exc.message, status=exc.http_status, details=exc.details)
    result = events_store_for_key(raw_key=raw_key, events=[event])
    if result is None:
        return unauthorized_response()
    return json_response(
        {
            "message": "Event accepted for processing",
            "event_id": event.event_id,
            "duplicate": "true" if result.duplicates else "false",
        },
        status=202,
    )
