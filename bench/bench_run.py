"""How long does `mmgen run` take for many jobs on the mock, and how late does it notice?

Starts the mock in a separate process (``python -m mock_server``) on a free loopback port, writes
N jobs to a temp folder, and runs them with mmgen's runner in this process, once per wait mode.
Prints the wall time and the completion lag: the time from the moment the mock's task reached
Success (its ``ends_at``) to the moment the runner knew it (first ``downloading`` event) and to
the moment the video was on disk and recorded (``finished``).

    python bench/bench_run.py [--jobs 200] [--generation-seconds 6] [--concurrency 200]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from mmgen.execute import RunSettings, Target, execute
from mmgen.outcomes import JobEvent
from mmgen.runner import RunConfig
from mmgen.spec import load_jobs


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_jobs(folder: Path, count: int, distinct: bool) -> None:
    lines = [
        "defaults:",
        "  model: S2V-01",
        "  subject_reference: [{type: character, image: [https://example.org/face.jpg]}]",
        "jobs:",
    ]
    for n in range(count):
        scene = f"Scene number {n}" if distinct else "A scene"
        lines += [f"  - name: job{n:04d}", f"    prompt: {scene}, the subject smiles."]
    (folder / "jobs.yaml").write_text("\n".join(lines) + "\n")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def one_run(base_url: str, folder: Path, out: Path, wait: str, args: argparse.Namespace):
    jobs = load_jobs([folder])
    noticed: dict[str, float] = {}
    finished: dict[str, float] = {}
    task_of: dict[str, str] = {}

    def on_event(event: JobEvent) -> None:
        now = time.time()
        if event.task_id:
            task_of[event.job] = event.task_id
        if event.phase == "downloading":
            noticed.setdefault(event.job, now)
        if event.phase == "finished":
            finished[event.job] = now

    settings = RunSettings(
        config=RunConfig(
            out_dir=out,
            concurrency=args.concurrency,
            wait=wait,  # type: ignore[arg-type]
            poll_interval=args.poll_interval,
            max_poll_interval=max(args.poll_interval * 6, 10.0),
            timeout=600,
        ),
        rpm=0,
    )
    target = Target(base_url=base_url, api_key="bench-key")
    started = time.perf_counter()
    result = await execute(jobs, target, settings, on_event=on_event)
    wall = time.perf_counter() - started
    async with httpx.AsyncClient(base_url=base_url, trust_env=False) as http:
        tasks = (await http.get("/_mock/tasks")).json()["tasks"]
    ends = {t["task_id"]: t["planned"]["ends_at"] for t in tasks}
    notice_lag = [noticed[j] - ends[task_of[j]] for j in noticed if task_of.get(j) in ends]
    done_lag = [finished[j] - ends[task_of[j]] for j in finished if task_of.get(j) in ends]
    ok = sum(o.ok for o in result.outcomes)
    return wall, ok, len(result.outcomes), notice_lag, done_lag


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--generation-seconds", type=float, default=6.0)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--poll-interval", type=float, default=1.0)
    parser.add_argument(
        "--distinct-prompts",
        action="store_true",
        help="one prompt per job: the mock then renders 200 different videos (~80 ms of CPU "
        "each, competing with mmgen for the 2 cores); by default all jobs share a prompt, so "
        "the figures are mmgen's rather than the mock's rendering",
    )
    args = parser.parse_args()

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINIMAX_")}
    mock = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mock_server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--generation-seconds",
            str(args.generation_seconds),
            "--seed",
            "1",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(base_url + "/_mock/stats", trust_env=False).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        print(
            f"{args.jobs} jobs, mock generation {args.generation_seconds:g} s, "
            f"concurrency {args.concurrency}, poll interval {args.poll_interval:g} s, "
            f"{'distinct prompts' if args.distinct_prompts else 'one shared prompt'}"
        )
        for wait in ("auto", "poll"):
            httpx.post(base_url + "/_mock/reset", trust_env=False).raise_for_status()
            with tempfile.TemporaryDirectory() as tmp:
                folder, out = Path(tmp) / "specs", Path(tmp) / "out"
                folder.mkdir()
                write_jobs(folder, args.jobs, args.distinct_prompts)
                wall, ok, total, notice, done = asyncio.run(
                    one_run(base_url, folder, out, wait, args)
                )
            print(
                f"--wait {wait:5}: {wall:6.2f} s wall for {ok}/{total} ok | "
                f"noticed after Success: p50 {statistics.median(notice) * 1000:6.0f} ms, "
                f"p95 {percentile(notice, 0.95) * 1000:6.0f} ms, "
                f"max {max(notice) * 1000:6.0f} ms | "
                f"recorded: p50 {statistics.median(done) * 1000:6.0f} ms, "
                f"p95 {percentile(done, 0.95) * 1000:6.0f} ms"
            )
    finally:
        mock.terminate()
        mock.wait(10)


if __name__ == "__main__":
    main()
