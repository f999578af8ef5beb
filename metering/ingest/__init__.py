"""Ingestion: how one event becomes a stored row.

`validation` checks a raw JSON event against SPEC §2.3 (the one validator of the API, the import and the
dashboard's test box); `writer` is the one writer of the events table (single events, bulk batches, last delivery
wins); `copy` formats validated events as PostgreSQL COPY text and writes it with the writer's upsert, for the
import's large batches.
"""
