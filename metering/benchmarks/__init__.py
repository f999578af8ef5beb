"""The ingestion benchmark (`manage.py bench_ingest`): a real HTTP server, a separate load process, a COPY baseline."""
