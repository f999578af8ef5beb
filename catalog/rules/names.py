"""When two names are "the same name, mistyped" (SPEC §7 near misses): they differ only by case, separators or
whitespace (`API.calls`, `api_calls`, `api calls` are all `api.calls`). The wizard warns with this rule while a
name is typed, and the event debugger explains unmatched events with it, so both suggest the same names.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_SEPARATORS_AND_WHITESPACE = re.compile(r"[\s._\-:/]+")


def name_likeness_key(name: str) -> str:
    """What names that differ only by case, separators (`. _ - : /`) or whitespace have in common."""
    return _SEPARATORS_AND_WHITESPACE.sub("", name).lower()


def similar_names(name: str, candidates: Iterable[str]) -> list[str]:
    """Those of `candidates` that differ from `name` only by case, separators or whitespace, sorted, without
    `name` itself."""
    wanted = name_likeness_key(name)
    return sorted(
        {candidate for candidate in candidates if candidate != name and name_likeness_key(candidate) == wanted}
    )
