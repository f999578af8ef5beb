"""The bench_* commands are development tools: a product install's `manage.py help` does not list them."""

import subprocess
import sys

from django.conf import settings


def _help(**env: str) -> str:
    completed = subprocess.run(
        [sys.executable, "manage.py", "help"],
        cwd=settings.BASE_DIR,
        env={**env, "PATH": "/usr/bin:/bin", "FLEXMETER_BENCHMARKS": env.get("FLEXMETER_BENCHMARKS", "")},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return completed.stdout


def test_manage_help_lists_no_benchmark_without_the_development_flag():
    listed = _help()
    assert "import_events" in listed
    assert "bench_" not in listed


def test_the_development_flag_brings_every_benchmark_command():
    listed = _help(FLEXMETER_BENCHMARKS="1")
    for command in ("bench_dashboard", "bench_import", "bench_ingest", "bench_usage"):
        assert command in listed
