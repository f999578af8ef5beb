"""The import's PostgreSQL write path: validated events as ready-made COPY text, written with one COPY per batch.

The text is built where the events are validated (the import's worker process, see `metering.importing.workers`), so the
process that talks to PostgreSQL only forwards bytes: formatting a row through psycopg's `write_row` costs
about as much Python time as validating it. Rows carry every column except `ingested_at`, which is the time of
the write and so is filled in by `CopyWriter.store` (in COPY text a raw newline can only end a row, so the row ends are
exactly where it goes).

`CopyWriter` hands the text to the writer's `events_store_copy_text`, which has the semantics of `events_store`
for large batches; this module never writes the events table itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import cast

from django.utils import timezone

from metering.ingest.validation import EventInput
from metering.ingest.writer import IngestResult, events_store_copy_text

# Column order of the COPY text: ingested_at last, appended to each row at write time.
COPY_COLUMNS = (
    'environment_id, event_id, event_name, external_customer_id, source, properties, "timestamp", ingested_at'
)
_SPECIAL = re.compile(r"[\\\t\n\r]")
_FIELD_SEPARATOR = "\x00"  # validation rejects NUL in every text field and in the properties JSON


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def copy_text(environment_id: int, events: Iterable[EventInput]) -> bytes:
    """Events as rows of COPY text in `COPY_COLUMNS` order, without the final `ingested_at` value: each row ends
    with the tab before it and the newline after it."""
    head = f"{environment_id}{_FIELD_SEPARATOR}"
    rows = []
    for event in events:
        row = _FIELD_SEPARATOR.join(
            (
                event.event_id,
                event.event_name,
                event.external_customer_id,
                event.source,
                cast(str, event.properties_json),
            )
        )
        if _SPECIAL.search(row) is not None:
            row = _escape(row)
        rows.append(f"{head}{row}{_FIELD_SEPARATOR}{event.timestamp.isoformat()}{_FIELD_SEPARATOR}\n")
    return "".join(rows).replace(_FIELD_SEPARATOR, "\t").encode()


class CopyWriter:
    """Writes COPY-text batches of one environment through the writer. After a batch that met stored ids it goes
    straight to the upsert (a re-import meets them batch after batch) until a batch turns out to be all new."""

    def __init__(self, environment_id: int):
        self.environment_id = environment_id
        self.expect_duplicates = False

    def store(self, data: bytes, *, events: int) -> IngestResult:
        """Store `events` rows of `copy_text` (unique ids, in event_id order so concurrent writers lock rows in the
        same order), as one transaction."""
        if not events:
            return IngestResult(accepted=0, duplicates=0)
        stamp = f"{timezone.now().isoformat()}\n".encode()
        duplicates = events_store_copy_text(
            data.replace(b"\n", stamp), columns=COPY_COLUMNS, direct=not self.expect_duplicates
        )
        self.expect_duplicates = duplicates > 0
        return IngestResult(accepted=events, duplicates=duplicates)
