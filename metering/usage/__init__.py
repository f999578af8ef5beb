"""The usage engine (SPEC §3–§5, §7): exact aggregation in the database, with no HTTP in it.

`spec` says what to measure and for whom, `engine` turns queries into one SQL statement and combines its exact
partial results, `dialects/` writes that SQL for PostgreSQL and SQLite, `numbers` and `periods` hold the exact
decimal and calendar rules, `cel_sql` translates meter expressions to SQL, `rollups/` reads and refreshes daily
rollups, and `selectors` is the public read API the rest of the product calls. `dashboard` holds the reads
behind the usage pages (billing periods, chart buckets).
"""
