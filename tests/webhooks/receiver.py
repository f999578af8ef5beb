"""A webhook receiver on 127.0.0.1 (a random free port) for the delivery tests. Per `webhook-id` it fails the first
`fail_first` requests with a 500, then leaves `time_out` requests unanswered for longer than the sender waits, then
answers 204. With `hold=True` every request waits, after being recorded, until `release()`. It records every request
(headers and raw body) and stops itself after `lifetime` seconds at the latest."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]


class Receiver:
    def __init__(self, *, fail_first: int = 0, time_out: int = 0, stall: float = 0, hold: bool = False, lifetime=180):
        self.fail_first, self.time_out, self.stall = fail_first, time_out, stall
        self.received: list[Received] = []
        self.seen = Counter()
        self.lock = threading.Lock()
        self.arrived = threading.Condition(self.lock)
        self.released = threading.Event()
        self.stopping = threading.Event()
        if not hold:
            self.released.set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the name http.server calls
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    received = Received({k.lower(): v for k, v in self.headers.items()}, body)
                    receiver.received.append(received)
                    receiver.seen[received.webhook_id] += 1
                    nth = receiver.seen[received.webhook_id]
                    receiver.arrived.notify_all()
                receiver.released.wait(lifetime)
                if nth <= receiver.fail_first:
                    self._answer(500, b'{"error": "not today"}')
                elif nth <= receiver.fail_first + receiver.time_out:
                    receiver.stopping.wait(receiver.stall)  # the sender gives up first
                    self._answer(204, b"")
                else:
                    self._answer(204, b"")

            def _answer(self, status: int, body: bytes) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the sender hung up (timed out, or was killed)

            def log_message(self, format, *args):  # noqa: A002 - quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self._timer = threading.Timer(lifetime, self.stop)
        self._timer.daemon = True

    def __enter__(self) -> Receiver:
        self._thread.start()
        self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self._timer.cancel()
        self.stopping.set()
        self.released.set()
        self.server.shutdown()
        self.server.server_close()

    def release(self) -> None:
        self.released.set()

    def wait_for(self, count: int, timeout: float) -> bool:
        """Wait until `count` requests have arrived."""
        with self.arrived:
            return self.arrived.wait_for(lambda: len(self.received) >= count, timeout)

    def unique(self) -> dict[str, Received]:
        """The requests after de-duplicating on webhook-id (the first of each)."""
        first: dict[str, Received] = {}
        for received in self.received:
            first.setdefault(received.webhook_id, received)
        return first
