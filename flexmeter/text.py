"""Text that no database can store: NUL characters (PostgreSQL text and jsonb refuse them) and lone surrogates
(`"\\ud800"`, which UTF-8 cannot encode). One rule, applied to every path, query parameter and JSON body string of a
request before a view sees it, and to single values by the validators that store them.
"""

import json
from typing import Any

from flexmeter.errors import ValidationFailed

MAX_REPORTED_PROBLEMS = 10


def text_problem(value: str) -> str | None:
    """Why `value` cannot be stored as text (None when it can)."""
    if "\x00" in value:
        return "must not contain NUL (\\u0000) characters"
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            return "must be valid Unicode (it contains a lone surrogate)"
    return None


def json_body_check(body: bytes) -> None:
    """ValidationFailed (400) naming every key or string of a JSON request body that cannot be stored."""
    if problems := json_body_text_problems(body):
        raise ValidationFailed(details=problems)


def json_body_text_problems(body: bytes) -> dict[str, str]:
    """Every key or string of a JSON body that cannot be stored, as `{json path: message}`.

    Such text can only arrive as a `\\u` escape (a raw NUL is invalid JSON, a raw surrogate invalid UTF-8), so a
    body without one costs a single scan. A body that is not valid JSON gives no problems here: the parser that
    reads it afterwards reports that.
    """
    if b"\\u" not in body:
        return {}
    try:
        # Numbers stay text: only strings matter here, and huge numbers must not cost (or fail) a conversion.
        value = json.loads(body, parse_int=str, parse_float=str, parse_constant=str)
    except (ValueError, RecursionError):
        return {}
    return json_text_problems(value)


def json_text_problems(value: Any, *, path: str = "") -> dict[str, str]:
    """Keys and strings of a parsed JSON value that cannot be stored (at most MAX_REPORTED_PROBLEMS).

    Walks with an explicit stack, so any depth the JSON parser accepted is walked without recursion.
    """
    problems: dict[str, str] = {}
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack and len(problems) < MAX_REPORTED_PROBLEMS:
        item, where = stack.pop()
        if isinstance(item, str):
            if problem := text_problem(item):
                problems[where or "body"] = problem
        elif isinstance(item, dict):
            for key, child in reversed(list(item.items())):
                if problem := text_problem(key):
                    problems[where or "body"] = f"a key {problem}"
                    continue
                stack.append((child, f"{where}.{key}" if where else key))
        elif isinstance(item, list):
            stack.extend((child, f"{where}[{index}]") for index, child in reversed(list(enumerate(item))))
    return problems
