"""Importing events from files (SPEC §9): JSON Lines or CSV, gzip-compressed or not, from a path or stdin.

Every record goes through the API's own validation (`metering.ingest.validation.event_clean`) and is stored in
batches with the API's semantics: a redelivered `event_id` replaces the stored event (last delivery wins) and is
counted as a duplicate, never twice. Each batch is one transaction, so an interrupted import leaves whole batches
behind and re-running it simply re-upserts them. Invalid records never stop an import: they are counted,
reported with their line numbers and reasons, and written to a rejects file when asked.

`sources` reads records, `batches` validates and prepares them, `workers` runs that beside the writing (a thread,
or a child process on PostgreSQL), `run` drives the import and `report` says what it did.
"""
