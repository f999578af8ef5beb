"""Ingestion: how one event becomes a stored row.

`validation` checks a raw JSON event against SPEC §2.3 and the rule for what can be stored (flexmeter/limits.py):
the one validator of the API, the import and the dashboard's test box; `writer` is the one writer of the events
table (single events, bulk batches, last delivery wins); `copy` formats validated events as PostgreSQL COPY text
and writes it with the writer's upsert, for the import's large batches; `audit` finds rows stored before the rule
that break it (`check_events`).
"""
