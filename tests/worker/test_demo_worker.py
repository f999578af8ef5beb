"""`manage.py demo` serves with the worker in a child process that stops when the server stops."""

import io
import os
import signal
import time
from pathlib import Path

import pytest
from django.core.management import call_command

from flexmeter.management.commands import demo
from worker.process import worker_child

pytestmark = pytest.mark.django_db


def _children() -> dict[int, str]:
    pids = set()
    for task in Path("/proc/self/task").iterdir():
        pids |= {int(pid) for pid in (task / "children").read_text().split()}
    return {pid: Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode() for pid in pids}


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads child processes from Linux /proc")
@pytest.mark.parametrize(("flags", "expect_worker"), [((), True), (("--no-worker",), False)])
def test_the_demo_server_runs_the_worker_alongside_and_stops_it(monkeypatch, tmp_path, flags, expect_worker):
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'child.sqlite3'}")  # the child never touches ./var
    seen_while_serving: dict[int, str] = {}
    real_call_command = demo.call_command

    def fake_call_command(name, *args, **kwargs):
        if name != "runserver":
            return real_call_command(name, *args, **kwargs)
        time.sleep(0.5)
        seen_while_serving.update({pid: cmd for pid, cmd in _children().items() if "run_worker" in cmd})

    monkeypatch.setattr(demo, "call_command", fake_call_command)
    out = io.StringIO()
    call_command("demo", *flags, events=0, stdout=out, stderr=io.StringIO())

    assert len(seen_while_serving) == (1 if expect_worker else 0)
    assert ("background worker runs alongside" in out.getvalue()) is expect_worker
    for pid in seen_while_serving:
        assert not Path(f"/proc/{pid}").exists(), "the worker outlived the server"


def test_a_terminated_demo_stops_its_worker_instead_of_orphaning_it(monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'child.sqlite3'}")
    handler_before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as stopped, worker_child() as child:
        os.kill(os.getpid(), signal.SIGTERM)  # as systemd or `kill` stops the demo
        time.sleep(10)  # the signal ends the block long before this does
    assert stopped.value.code == 128 + signal.SIGTERM
    assert child.poll() is not None, "the worker outlived the demo"
    assert signal.getsignal(signal.SIGTERM) is handler_before
