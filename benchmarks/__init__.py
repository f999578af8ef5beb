"""Development-only benchmarks of flexmeter; not installed with the product and never imported by it.

`runner`, `client` and `workload` measure ingestion over real HTTP (`bench_ingest`), `import_run` the import
command (`bench_import`), `usage` the usage engine on millions of events (`bench_usage`), `dashboard` the
dashboard's pages (`bench_dashboard`). The `bench_*` management commands exist only when this package is on the
path and FLEXMETER_BENCHMARKS=1 adds this app to INSTALLED_APPS (see flexmeter/settings.py).
"""
