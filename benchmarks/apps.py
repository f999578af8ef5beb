from django.apps import AppConfig


class BenchmarksConfig(AppConfig):
    """Carries the bench_* management commands; installed only on request (FLEXMETER_BENCHMARKS=1)."""

    name = "benchmarks"
