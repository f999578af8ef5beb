"""Public identifiers: a type prefix plus a ULID (`meter_01J…`), sortable by creation time."""

from ulid import ULID


def new_public_id(prefix: str) -> str:
    return f"{prefix}_{ULID()}"
