"""The load process of the ingestion benchmark: POSTs pre-built bodies over loopback and reports latencies.

Run as `python -m benchmarks.client --url … --key … --mode bulk|single …`; prints one JSON object.
Standard library only, one asyncio loop: `--concurrency` HTTP/1.1 connections each send one request, read its
whole answer (status, headers, body) and only then send the next (no pipelining), so every request is a real,
separate request answered by the server before the next one on that connection. Connections are kept alive when
the server allows it (gunicorn's gthread workers do; sync workers close after every answer and the client then
reconnects). A bare asyncio protocol rather than streams or threads: the client shares the CPU with the server
it measures, so it must cost as little as possible.
"""

import argparse
import asyncio
import datetime as dt
import json
import sys
import time
import urllib.parse

from benchmarks.workload import SPREAD_SECONDS, START, bulk_body, single_body


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index]


class ProtocolError(ValueError):
    pass


def parse_response(buffer: bytes | bytearray, *, closed: bool = False) -> tuple[int, bytes, bool, int] | None:
    """Parse one HTTP/1.1 response from the front of `buffer`: (status, head and body, keep-alive, bytes used),
    or None while it is incomplete. `closed`: the server closed the connection (ends a body without a length)."""
    end_of_head = buffer.find(b"\r\n\r\n")
    if end_of_head < 0:
        if closed:
            raise ProtocolError(f"connection closed mid-response: {bytes(buffer[:80])!r}")
        return None
    head = bytes(buffer[: end_of_head + 4])
    if not head.startswith(b"HTTP/1."):
        raise ProtocolError(f"not an HTTP response: {head[:80]!r}")
    status = int(head[9:12])
    headers = {}
    for line in head[:-4].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip().lower()
    keep_alive = head.startswith(b"HTTP/1.1") and headers.get(b"connection") != b"close"
    body_start = end_of_head + 4
    if b"content-length" in headers:
        used = body_start + int(headers[b"content-length"])
        return (status, bytes(buffer[:used]), keep_alive, used) if len(buffer) >= used else None
    if headers.get(b"transfer-encoding") == b"chunked":
        terminator = buffer.find(b"\r\n0\r\n\r\n", body_start - 2)
        if terminator < 0:
            return None
        used = terminator + 7
        return status, bytes(buffer[:used]), keep_alive, used
    if not closed:
        return None
    return status, bytes(buffer), False, len(buffer)


class _HttpConnection(asyncio.Protocol):
    """One keep-alive connection answering one request at a time (no pipelining)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future | None = None
        self.closed = False

    def connection_made(self, transport) -> None:
        self.transport = transport

    def request(self, data: bytes) -> asyncio.Future:
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return self.waiter

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._answer()

    def connection_lost(self, exc) -> None:
        self.closed = True
        self._answer()

    def _answer(self) -> None:
        if self.waiter is None or self.waiter.done():
            return
        try:
            parsed = parse_response(self.buffer, closed=self.closed)
        except ProtocolError as exc:
            self.waiter.set_exception(exc)
            return
        if parsed is not None:
            status, response, keep_alive, used = parsed
            del self.buffer[:used]
            self.waiter.set_result((status, response, keep_alive and not self.closed))


async def _run(*, url: str, key: str, path: str, bodies: list[bytes], concurrency: int, max_seconds: float) -> dict:
    parsed = urllib.parse.urlsplit(url)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {parsed.netloc}\r\nContent-Type: application/json\r\nx-api-key: {key}\r\n"
    ).encode()
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    failures: list[str] = []
    pending = iter(bodies)
    sent = 0
    connections = 0
    deadline = time.monotonic() + max_seconds

    async def connection_loop() -> None:
        nonlocal sent, connections
        connection: _HttpConnection | None = None
        try:
            for body in pending:
                if time.monotonic() > deadline:
                    return
                sent += 1
                started = time.perf_counter()
                try:
                    if connection is None:
                        _, connection = await loop.create_connection(_HttpConnection, parsed.hostname, parsed.port)
                        connections += 1
                    status, response, keep_alive = await connection.request(
                        head + b"Content-Length: %d\r\n\r\n" % len(body) + body
                    )
                except (OSError, ValueError) as exc:
                    failures.append(repr(exc))
                    if connection is not None:
                        connection.transport.close()
                    connection = None
                    continue
                latencies.append(time.perf_counter() - started)
                statuses[status] = statuses.get(status, 0) + 1
                if status != 202 and len(failures) < 5:
                    failures.append(response[:300].decode(errors="replace"))
                if not keep_alive:
                    connection.transport.close()
                    connection = None
        finally:
            if connection is not None:
                connection.transport.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection_loop() for _ in range(concurrency)))
    wall = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": len(latencies),
        "accepted_requests": statuses.get(202, 0),
        "connections": connections,
        "wall_seconds": wall,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "statuses": {str(status): count for status, count in sorted(statuses.items())},
        "failures": failures[:5],
        "timed_out": sent < len(bodies),
    }


def run(*, url: str, key: str, path: str, bodies: list[bytes], concurrency: int, max_seconds: float) -> dict:
    return asyncio.run(
        _run(url=url, key=key, path=path, bodies=bodies, concurrency=concurrency, max_seconds=max_seconds)
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--mode", choices=["bulk", "single"], required=True)
    parser.add_argument("--requests", type=int, required=True)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--max-seconds", type=float, default=120)
    parser.add_argument("--prefix", default="bench")
    parser.add_argument("--start", type=dt.datetime.fromisoformat, default=START, help="first event timestamp")
    parser.add_argument("--spread-seconds", type=int, default=SPREAD_SECONDS, help="timestamps wrap after this")
    args = parser.parse_args(argv)
    placement = {"prefix": args.prefix, "start": args.start, "spread_seconds": args.spread_seconds}
    if args.mode == "bulk":
        path = "/v1/events/bulk"
        bodies = [bulk_body(batch, args.batch_size, **placement) for batch in range(args.requests)]
    else:
        path = "/v1/events"
        bodies = [single_body(index, **placement) for index in range(args.requests)]
    result = run(
        url=args.url,
        key=args.key,
        path=path,
        bodies=bodies,
        concurrency=args.concurrency,
        max_seconds=args.max_seconds,
    )
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
