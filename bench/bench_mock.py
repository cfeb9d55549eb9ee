"""Requests per second of the mock on loopback: a create + query mix over keep-alive HTTP/1.1.

The mock runs as `mmgen -q mock --port 0` in its own process (one uvicorn worker, as users run
it); this process drives it with a small raw-asyncio HTTP/1.1 client (httpx's own overhead would
be the bottleneck, not the mock) over ``--connections`` keep-alive connections, for a bounded
number of requests: one create per ``--queries-per-create`` queries of tasks created earlier.
Every answer is checked (HTTP 200, base_resp 0).

    python bench/bench_mock.py [--requests 20000] [--connections 32] [--queries-per-create 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import subprocess
import sys
import time
from itertools import count

BODY = json.dumps(
    {
        "model": "S2V-01",
        "prompt": "A girl runs toward the camera and winks with a smile.",
        "prompt_optimizer": True,
        "subject_reference": [{"type": "character", "image": ["https://example.org/face.jpg"]}],
    }
).encode()


def start_server() -> tuple[subprocess.Popen[str], str, int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "mmgen", "-q", "mock", "--port", "0", "--generation-seconds", "5"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"http://([\d.]+):(\d+)", line)
    if match is None:
        proc.kill()
        raise SystemExit(f"the mock did not start: {line!r}")
    return proc, match.group(1), int(match.group(2))


class Connection:
    """One keep-alive HTTP/1.1 connection, one request at a time."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, target: str, body: bytes = b"") -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = (
            f"{method} {target} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Authorization: Bearer bench\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        self.writer.write(head + body)
        header = await self.reader.readuntil(b"\r\n\r\n")
        status = int(header[9:12])
        match = re.search(rb"(?i)content-length: (\d+)", header)
        length = int(match.group(1)) if match else 0
        return status, await self.reader.readexactly(length)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            await self.writer.wait_closed()


async def drive(
    host: str, port: int, total: int, connections: int, queries_per_create: int
) -> tuple[float, list[float], int]:
    task_ids: list[str] = []
    counter = count()
    latencies: list[float] = []
    errors = 0

    async def worker() -> None:
        nonlocal errors
        conn = Connection(host, port)
        try:
            while (n := next(counter)) < total:
                started = time.perf_counter()
                if n % (queries_per_create + 1) == 0 or not task_ids:
                    status, body = await conn.request("POST", "/v1/video_generation", BODY)
                    if status == 200 and b'"status_code":0' in body:
                        task_ids.append(json.loads(body)["task_id"])
                    else:
                        errors += 1
                else:
                    task_id = task_ids[n % len(task_ids)]
                    target = f"/v1/query/video_generation?task_id={task_id}"
                    status, body = await conn.request("GET", target)
                    if status != 200 or b'"status_code":0' not in body:
                        errors += 1
                latencies.append(time.perf_counter() - started)
        finally:
            await conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    return time.perf_counter() - started, latencies, errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--queries-per-create", type=int, default=4)
    args = parser.parse_args()

    proc, host, port = start_server()
    try:
        # warm-up: connections, schema compilation, first tasks
        asyncio.run(drive(host, port, 500, args.connections, args.queries_per_create))
        elapsed, latencies, errors = asyncio.run(
            drive(host, port, args.requests, args.connections, args.queries_per_create)
        )
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
    latencies.sort()
    creates = args.requests // (args.queries_per_create + 1)
    print(
        f"mock on {host}:{port}: {args.requests} requests (~{creates} creates, the rest queries) "
        f"over {args.connections} keep-alive connections in {elapsed:.2f} s"
    )
    print(f"throughput: {args.requests / elapsed:,.0f} requests/s, errors: {errors}")
    print(
        f"latency: median {statistics.median(latencies) * 1000:.1f} ms, "
        f"p99 {latencies[int(len(latencies) * 0.99)] * 1000:.1f} ms"
    )
    summary = {
        "bench": "mock",
        "requests": args.requests,
        "connections": args.connections,
        "seconds": round(elapsed, 3),
        "requests_per_s": round(args.requests / elapsed),
        "errors": errors,
        "latency_ms": {
            "p50": round(statistics.median(latencies) * 1000, 1),
            "p99": round(latencies[int(len(latencies) * 0.99)] * 1000, 1),
        },
    }
    print(json.dumps(summary, sort_keys=True))
    if errors:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
