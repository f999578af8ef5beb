"""The load process of the ingestion benchmark: POSTs pre-built bodies over loopback and reports latencies.

Run as `python -m metering.benchmarks.client --url … --key … --mode bulk|single …`; prints one JSON object.
Standard library only: threads writing pre-built HTTP/1.1 requests to plain sockets and reading the status line,
so that the client spends as little as possible of the CPU it shares with the server it measures.
"""

import argparse
import json
import socket
import sys
import threading
import time
import urllib.parse

from metering.benchmarks.workload import bulk_body, single_body


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index]


def _post(address: tuple[str, int], request: bytes) -> tuple[int, bytes]:
    """Send one request on a fresh connection and read until the server closes it (gunicorn sync workers do)."""
    with socket.create_connection(address, timeout=60) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    response = b"".join(chunks)
    if not response.startswith(b"HTTP/1."):
        raise ValueError(f"not an HTTP response: {response[:80]!r}")
    return int(response[9:12]), response


def run(*, url: str, key: str, path: str, bodies: list[bytes], concurrency: int, max_seconds: float) -> dict:
    parsed = urllib.parse.urlsplit(url)
    address = (parsed.hostname, parsed.port)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {parsed.netloc}\r\nContent-Type: application/json\r\n"
        f"x-api-key: {key}\r\nConnection: close\r\n"
    ).encode()
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    failures: list[str] = []
    next_index = 0
    lock = threading.Lock()
    deadline = time.monotonic() + max_seconds

    def worker() -> None:
        nonlocal next_index
        while time.monotonic() < deadline:
            with lock:
                if next_index >= len(bodies):
                    return
                body = bodies[next_index]
                next_index += 1
            request = head + f"Content-Length: {len(body)}\r\n\r\n".encode() + body
            started = time.perf_counter()
            try:
                status, payload = _post(address, request)
            except (OSError, ValueError) as exc:
                with lock:
                    failures.append(repr(exc))
                continue
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
                statuses[status] = statuses.get(status, 0) + 1
                if status != 202 and len(failures) < 5:
                    failures.append(payload[:300].decode(errors="replace"))

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": len(latencies),
        "accepted_requests": statuses.get(202, 0),
        "wall_seconds": wall,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "statuses": {str(status): count for status, count in sorted(statuses.items())},
        "failures": failures[:5],
        "timed_out": next_index < len(bodies),
    }


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
    args = parser.parse_args(argv)
    if args.mode == "bulk":
        path = "/v1/events/bulk"
        bodies = [bulk_body(batch, args.batch_size, prefix=args.prefix) for batch in range(args.requests)]
    else:
        path = "/v1/events"
        bodies = [single_body(index, prefix=args.prefix) for index in range(args.requests)]
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
