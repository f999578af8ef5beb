"""Domain errors shared by every interface (REST API, dashboard forms, admin, commands).

Each carries the error code of SPEC §6.1 and, where fields are at fault, `details`: a mapping from the
field's JSON path (`aggregation.field`, `events[3].timestamp`) to a human-readable message.
"""


class FlexmeterError(Exception):
    code = "internal_error"
    http_status = 500
    default_message = "Internal error"

    def __init__(self, message: str | None = None, details: dict[str, str] | None = None):
        self.message = message or self.default_message
        self.details = details or {}
        super().__init__(self.message)


class ValidationFailed(FlexmeterError):
    code = "validation_error"
    http_status = 400
    default_message = "Validation failed"

    def __init__(self, message: str | None = None, details: dict[str, str] | None = None):
        if message is None and details:
            message = "; ".join(f"{path}: {text}" for path, text in details.items())
        super().__init__(message, details)


class NotFound(FlexmeterError):
    code = "not_found"
    http_status = 404
    default_message = "Not found"


class AlreadyExists(FlexmeterError):
    code = "already_exists"
    http_status = 409
    default_message = "Already exists"


class InvalidOperation(FlexmeterError):
    code = "invalid_operation"
    http_status = 400
    default_message = "Invalid operation"


class PermissionDenied(FlexmeterError):
    code = "permission_denied"
    http_status = 403
    default_message = "Permission denied"


class PayloadTooLarge(FlexmeterError):
    code = "validation_error"
    http_status = 413
    default_message = "Request body is too large"


class Unauthenticated(FlexmeterError):
    code = "unauthorized"
    http_status = 401
    default_message = "Missing or invalid API key"


def prefix_details(prefix: str, details: dict[str, str]) -> dict[str, str]:
    """Nest field paths under a parent path: ('meter', {'event_name': m}) -> {'meter.event_name': m}."""
    return {
        (f"{prefix}.{path}" if not path.startswith("[") else f"{prefix}{path}"): msg for path, msg in details.items()
    }
