"""flexmeter.process: a server process loads every view, then freezes what it holds (no 30 ms collector pauses)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

_PROBE = """
import gc, sys
import {module}
frozen = gc.get_freeze_count()
loaded = "metering.api.usage" in sys.modules
gc.collect()
print(frozen, loaded, gc.get_freeze_count() == frozen)
"""


@pytest.mark.parametrize("module", ["flexmeter.wsgi", "flexmeter.asgi"])
def test_the_server_entry_points_freeze_what_they_loaded_views_included(module):
    env = {**os.environ, "DATABASE_URL": "", "PYTHONPATH": str(ROOT)}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    done = subprocess.run(
        [sys.executable, "-c", _PROBE.format(module=module)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    frozen, loaded, still_frozen = done.stdout.split()
    # Django, the apps and every view module: tens of thousands of objects no collection walks again
    assert int(frozen) > 20_000
    assert loaded == "True"
    assert still_frozen == "True"
