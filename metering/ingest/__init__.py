"""Ingestion: how one event becomes a stored row.

`validation` checks a raw JSON event against SPEC §2.3 and the rule for what can be stored (flexmeter/limits.py):
the one validator of the API, the import and the dashboard's test box; `writer` is the one writer of the events
table (single events, bulk batches, last delivery wins), and the only module that writes it
(tests/metering/ingest/test_one_writer.py holds it to that); `copy` formats validated events as PostgreSQL COPY
text for the import's large batches and hands it to the writer's `events_store_copy_text`; `audit` finds rows
stored before the rule that break it (`check_events`).
"""
