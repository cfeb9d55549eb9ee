"""The mock under load on loopback: request throughput, 10,000 live tasks, video cost.

The mock runs as `python -m mock_server -q --port 0` in its own process (one uvicorn worker, as
users run it); this process drives it with a small raw-asyncio HTTP/1.1 client (httpx's own
overhead would be the bottleneck, not the mock). Three scenarios, each bounded in count and time:

1. ``mix``: ``--requests`` create/query requests over ``--connections`` keep-alive connections,
   one create per ``--queries-per-create`` queries. Every answer is checked.
2. ``live``: ``--live-tasks`` creates (default 10,000), each with a ``callback_url`` on a
   receiver in this process, so every create waits for its callback check (sync mode), and a
   generation time long enough that all tasks are alive at once; then wait until every task's
   success callback arrived. Reports creates/s, the mock's CPU per task, its peak RSS, the
   challenge latency it measured, and callbacks delivered.
3. ``video``: CPU per distinct video, per resolution (in this process).

The last line printed is one JSON object with every figure.

    python bench/bench_mock.py [--requests 20000] [--connections 32] [--live-tasks 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from itertools import count
from pathlib import Path
from typing import Any

BODY = json.dumps(
    {
        "model": "S2V-01",
        "prompt": "A girl runs toward the camera and winks with a smile.",
        "prompt_optimizer": True,
        "subject_reference": [{"type": "character", "image": ["https://example.org/face.jpg"]}],
    }
).encode()


def start_server(*options: str) -> tuple[subprocess.Popen[str], str, int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "mock_server", "-q", "--port", "0", *options],
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


class Receiver:
    """A minimal keep-alive HTTP/1.1 callback receiver: echoes challenges, counts updates."""

    def __init__(self) -> None:
        self.updates: Counter[str] = Counter()
        self.challenges = 0
        self.port = 0
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve()), daemon=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                header = await reader.readuntil(b"\r\n\r\n")
                match = re.search(rb"(?i)content-length: (\d+)", header)
                body = await reader.readexactly(int(match.group(1)) if match else 0)
                if b'"challenge"' in body:
                    self.challenges += 1
                    answer = body
                else:
                    status = re.search(rb'"status":\s*"(\w+)"', body)
                    self.updates[status.group(1).decode() if status else "?"] += 1
                    answer = b'{"ok":true}'
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(answer)}\r\n\r\n".encode()
                    + answer
                )
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0, backlog=1024)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            await self._stop.wait()

    def start(self) -> str:
        self._thread.start()
        self._ready.wait(10)
        return f"http://127.0.0.1:{self.port}/hook"

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


def process_usage(pid: int) -> tuple[float, int]:
    """(CPU seconds used, peak RSS in bytes) of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    peak = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            peak = int(line.split()[1]) * 1024
    return cpu, peak


def mix_scenario(args: argparse.Namespace) -> dict[str, Any]:
    proc, host, port = start_server("--generation-seconds", "5")
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
        f"mix: {args.requests} requests (~{creates} creates, the rest queries) over "
        f"{args.connections} keep-alive connections in {elapsed:.2f} s: "
        f"{args.requests / elapsed:,.0f} requests/s, errors: {errors}"
    )
    return {
        "requests": args.requests,
        "requests_per_s": round(args.requests / elapsed),
        "latency_p50_ms": round(statistics.median(latencies) * 1000, 2),
        "latency_p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 2),
        "errors": errors,
    }


async def create_all(
    host: str, port: int, total: int, connections: int, callback_url: str
) -> tuple[float, int]:
    body = json.dumps({**json.loads(BODY), "callback_url": callback_url}).encode()
    counter = count()
    errors = 0

    async def worker() -> None:
        nonlocal errors
        conn = Connection(host, port)
        try:
            while next(counter) < total:
                status, answer = await conn.request("POST", "/v1/video_generation", body)
                if status != 200 or b'"status_code":0' not in answer:
                    errors += 1
        finally:
            await conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    return time.perf_counter() - started, errors


def live_scenario(args: argparse.Namespace) -> dict[str, Any]:
    receiver = Receiver()
    hook = receiver.start()
    generation = args.live_generation_seconds
    proc, host, port = start_server("--generation-seconds", str(generation))
    try:
        cpu_before, _ = process_usage(proc.pid)
        elapsed, errors = asyncio.run(
            create_all(host, port, args.live_tasks, args.connections, hook)
        )
        cpu_created, rss_created = process_usage(proc.pid)
        with urllib.request.urlopen(f"http://{host}:{port}/_mock/stats") as answer:
            live = json.load(answer)
        alive = live["Preparing"] + live["Queueing"] + live["Processing"]
        deadline = time.monotonic() + generation * 2 + 120
        while receiver.updates["success"] < args.live_tasks - errors:
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
        cpu_after, rss_peak = process_usage(proc.pid)
        with urllib.request.urlopen(f"http://{host}:{port}/_mock/stats") as answer:
            stats = json.load(answer)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()
        receiver.stop()
    result = {
        "tasks": args.live_tasks,
        "generation_seconds": generation,
        "create_errors": errors,
        "alive_at_once": alive,
        "creates_per_s": round(args.live_tasks / elapsed),
        "create_cpu_ms_per_task": round((cpu_created - cpu_before) * 1000 / args.live_tasks, 3),
        "total_cpu_ms_per_task": round((cpu_after - cpu_before) * 1000 / args.live_tasks, 3),
        "rss_after_creates_mb": round(rss_created / 2**20, 1),
        "rss_peak_mb": round(rss_peak / 2**20, 1),
        "challenges_ok": stats["challenges_ok"],
        "challenges_failed": stats["challenges_failed"],
        "challenge_latency_ms": stats["challenge_latency_ms"],
        "callbacks_delivered": stats["callbacks_delivered"],
        "success_callbacks_received": receiver.updates["success"],
    }
    print(
        f"live: {args.live_tasks} creates with callbacks in {elapsed:.1f} s "
        f"({result['creates_per_s']}/s, {alive} alive at once), mock CPU "
        f"{result['total_cpu_ms_per_task']} ms/task, peak RSS {result['rss_peak_mb']} MB, "
        f"challenges ok {stats['challenges_ok']} failed {stats['challenges_failed']}"
    )
    return result


def video_scenario(count_per_size: int) -> dict[str, Any]:
    from mock_server.media.video import RESOLUTIONS, VideoSpec, render_video

    figures: dict[str, Any] = {}
    for name, (width, height) in RESOLUTIONS.items():
        for seconds in (6, 10):
            render_video(VideoSpec("warm-up", "S2V-01", None, width=width, height=height))
            started = time.process_time()
            size = 0
            for i in range(count_per_size):
                spec = VideoSpec(f"prompt {i}", "S2V-01", None, width, height, seconds=seconds)
                size = len(render_video(spec))
            cpu_ms = (time.process_time() - started) * 1000 / count_per_size
            figures[f"{name}_{seconds}s"] = {"cpu_ms": round(cpu_ms, 2), "bytes": size}
            print(f"video {name} {seconds} s: {cpu_ms:.2f} ms CPU, {size:,} bytes")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--queries-per-create", type=int, default=4)
    parser.add_argument("--live-tasks", type=int, default=10_000)
    parser.add_argument("--live-generation-seconds", type=float, default=60.0)
    parser.add_argument("--videos", type=int, default=20, help="distinct videos per size")
    parser.add_argument(
        "--only", choices=["mix", "live", "video"], action="append", help="run only these"
    )
    args = parser.parse_args()
    chosen = set(args.only or ["mix", "live", "video"])
    result: dict[str, Any] = {"bench": "mock"}
    if "video" in chosen:
        result["video"] = video_scenario(args.videos)
    if "mix" in chosen:
        result["mix"] = mix_scenario(args)
    if "live" in chosen:
        result["live"] = live_scenario(args)
    print(json.dumps(result))
    if result.get("mix", {}).get("errors") or result.get("live", {}).get("create_errors"):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
