"""Building blocks shared by the meter and feature rules: the error collector and typed value readers."""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from flexmeter.decimals import decimal_text
from flexmeter.errors import ValidationFailed, prefix_details

NAME_MAX_LENGTH = 255
DECIMAL_MAX_LENGTH = 64
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class Errors(dict):
    """Collects `{path: message}` so a function can report every problem of an object at once."""

    def add(self, path: str, message: str) -> None:
        self.setdefault(path, message)

    def collect(self, fn: Callable[..., Any], *args: Any, prefix: str = "", **kwargs: Any) -> Any:
        """Run another rule; on failure keep its errors (nested under `prefix`) and return None."""
        try:
            return fn(*args, **kwargs)
        except ValidationFailed as exc:
            for path, message in (prefix_details(prefix, exc.details) if prefix else exc.details).items():
                self.add(path, message)
            return None

    def raise_if_any(self) -> None:
        if self:
            raise ValidationFailed(details=dict(self))


def text_value(
    value: Any,
    path: str,
    errors: Errors,
    *,
    required: bool = False,
    max_length: int = NAME_MAX_LENGTH,
    single_line: bool = True,
) -> str:
    """A trimmed string: `None` means absent (`""`); required text must not be blank."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        errors.add(path, "must be a string")
        return ""
    value = value.strip()
    if required and not value:
        errors.add(path, "is required")
    elif len(value) > max_length:
        errors.add(path, f"must be at most {max_length} characters (got {len(value)})")
    elif single_line and _CONTROL_CHARACTERS.search(value):
        errors.add(path, "must not contain control characters (newlines, tabs…)")
    return value


def choice_value(value: Any, path: str, errors: Errors, choices: list[str] | tuple[str, ...], *, upper: bool) -> str:
    """A case-insensitive choice, returned in its canonical case; `""` when absent."""
    if value is None or value == "":
        return ""
    if not isinstance(value, str):
        errors.add(path, f"must be one of {', '.join(choices)}")
        return ""
    normalized = value.strip().upper() if upper else value.strip().lower()
    if normalized not in choices:
        errors.add(path, f"must be one of {', '.join(choices)} (got {value!r})")
        return ""
    return normalized


def decimal_value(value: Any, path: str, errors: Errors, *, positive: bool = False) -> str:
    """A decimal given as a JSON number or a string, returned as its shortest exact decimal text."""
    if value is None or value == "":
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int, float, Decimal)):
        errors.add(path, 'must be a decimal number (a string such as "1.5" or a number)')
        return ""
    if isinstance(value, str):
        value = value.strip()
    elif isinstance(value, float):
        value = repr(value)
    try:
        number = Decimal(value)
    except InvalidOperation:
        errors.add(path, f"must be a decimal number (got {value!r})")
        return ""
    if not number.is_finite():
        errors.add(path, "must be a finite decimal number")
        return ""
    if positive and number <= 0:
        errors.add(path, "must be greater than 0")
        return ""
    # The exponent is checked first: `1e999999999` would otherwise be written out in full before its length is.
    if abs(number.adjusted()) > DECIMAL_MAX_LENGTH or len(text := decimal_text(number)) > DECIMAL_MAX_LENGTH:
        errors.add(path, f"must have at most {DECIMAL_MAX_LENGTH} digits")
        return ""
    return text
