"""Names of the throwaway databases the benchmark tests create."""

import os
from urllib.parse import urlsplit


def bench_database(purpose: str) -> tuple[str, str]:
    """(URL, name) of a benchmark database named after this run's configured database (`DATABASE_URL`), so
    suites run in parallel against different databases never create, fill or drop the same one."""
    configured = urlsplit(os.environ.get("DATABASE_URL", "")).path.lstrip("/") or "flexmeter"
    name = f"{configured}_{purpose}_bench_pytest"
    return f"postgres://postgres@127.0.0.1:5432/{name}", name
