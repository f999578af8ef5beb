"""Usage marks (SPEC §11): which (environment, customer, event name) a write touched, for the alert evaluator.

Every events writer records its batch's distinct (customer, event name) pairs in `metering_usage_mark` in the same
transaction as the events, with one statement per batch: an upsert that inserts new marks and bumps the `version`
of existing ones. The evaluator (the `alerts` app) reads marks with their versions and, once it has committed what
it concluded, deletes only the marks whose version is still the one it read, so a write that lands meanwhile is
evaluated on the next pass. Pairs are written in sorted order so concurrent batches lock marks in the same order.

On PostgreSQL the single-statement writers add `MARKS_CTE` to their own statement (no extra round trip);
`usage_marks_write` serves the other paths (COPY, SQLite, the ClickHouse writer).
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from django.db import connection
from django.utils import timezone

MARK_TABLE = "metering_usage_mark"
_MARK_COLUMNS = "environment_id, external_customer_id, event_name, version, marked_at"
_ON_CONFLICT = (
    "ON CONFLICT (environment_id, external_customer_id, event_name) DO UPDATE SET "
    f"version = {MARK_TABLE}.version + 1, marked_at = excluded.marked_at"
)


def marks_cte(source: str) -> str:
    """A PostgreSQL data-modifying CTE (`marked AS (…)`) that marks every (environment, customer, event name) of
    `source`, a CTE whose rows carry those three columns (the events upsert's RETURNING)."""
    return (
        f"marked AS (INSERT INTO {MARK_TABLE} ({_MARK_COLUMNS}) "
        f"SELECT DISTINCT environment_id, external_customer_id, event_name, 1, now() FROM {source} "
        f"ORDER BY 1, 2, 3 {_ON_CONFLICT})"
    )


def usage_marks_write(*, environment_id: int, pairs: Iterable[tuple[str, str]]) -> int:
    """Mark `(external_customer_id, event_name)` pairs of one environment in one statement, in the caller's
    transaction (call it in the transaction that wrote the events). Returns how many distinct pairs were marked."""
    distinct = sorted(set(pairs))
    if not distinct:
        return 0
    if connection.vendor == "postgresql":
        sql = (
            f"INSERT INTO {MARK_TABLE} ({_MARK_COLUMNS}) "
            "SELECT %s, c, n, 1, now() FROM unnest(%s::text[], %s::text[]) AS t(c, n) ORDER BY c, n "
            f"{_ON_CONFLICT}"
        )
        params: list = [environment_id, [c for c, _ in distinct], [n for _, n in distinct]]
    else:
        sql = (
            f"INSERT INTO {MARK_TABLE} ({_MARK_COLUMNS}) "
            "SELECT %s, j.value ->> 0, j.value ->> 1, 1, %s FROM json_each(%s) AS j WHERE true "
            f"{_ON_CONFLICT}"
        )
        params = [environment_id, connection.ops.adapt_datetimefield_value(timezone.now()), json.dumps(distinct)]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
    return len(distinct)


def pairs_from_copy_text(data: bytes, columns: str) -> set[tuple[str, str]]:
    """The distinct (external_customer_id, event_name) of PostgreSQL COPY text rows of `columns`."""
    names = [name.strip().strip('"') for name in columns.split(",")]
    customer_at, name_at = names.index("external_customer_id"), names.index("event_name")
    last = max(customer_at, name_at)
    pairs: set[tuple[bytes, bytes]] = set()
    for line in data.split(b"\n"):
        if line:
            fields = line.split(b"\t", last + 1)
            pairs.add((fields[customer_at], fields[name_at]))
    return {(_unescape(customer), _unescape(name)) for customer, name in pairs}


_ESCAPES = {b"\\": b"\\", b"t": b"\t", b"n": b"\n", b"r": b"\r"}


def _unescape(value: bytes) -> str:
    """Undo the COPY text escapes `metering.ingest.copy` writes (backslash, tab, newline, carriage return)."""
    if b"\\" not in value:
        return value.decode()
    out, index = bytearray(), 0
    while index < len(value):
        escaped = value[index + 1 : index + 2]
        if value[index : index + 1] == b"\\" and escaped in _ESCAPES:
            out += _ESCAPES[escaped]
            index += 2
        else:
            out += value[index : index + 1]
            index += 1
    return out.decode()
