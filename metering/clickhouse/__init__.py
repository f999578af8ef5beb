"""The ClickHouse events backend (SPEC §12): where events live when one PostgreSQL is no longer enough.

`config` reads `EVENTS_URL` and opens clients; `schema` is the DDL (single node or cluster) that
`migrate_events` runs; `rows` turns a validated event into the row ClickHouse stores. The writer is
`metering.ingest.clickhouse` (the ingest package keeps the only writers of events). docs/clickhouse.md explains
the storage and idempotency design.
"""
