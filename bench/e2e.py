"""`mmgen run` against a bare httpx loop doing the same work, on the same mock process.

The mock runs as ``mmgen mock --port 0 --generation-seconds 0`` in its own process. Each round
runs, one after the other against that one mock (reset in between):

- ``mmgen -q run JOBS --base-url URL --rpm 0 --concurrency N`` (a child process), otherwise with
  its defaults: ``--wait auto`` (the mock is on loopback, so mmgen's callback listener takes
  the pushes; the default ``--poll-interval`` of 10 s is only the fallback);
- a bare loop (a child process too: this file with ``--bare-worker``): asyncio and one
  ``httpx.AsyncClient`` with a pool of N connections, N jobs at once, each doing
  create -> query until Success -> retrieve -> streamed download to a file with sha256 and
  fsync -> rename. No records, no retries, no rate limiting: the floor mmgen is measured against.
  It asks a fresh task for its status after ``--poll-interval`` (default 0.05 s: short, so
  that its figures are its work, not its waiting).

All jobs share one prompt, so the mock renders one video and the figures are the clients'.
Prints each round's wall times, the best of ``--repeat`` for each side and their ratio (the
target of issues 8 and 18: mmgen <= 1.25x the bare loop), and the pushes mmgen's listener
refused (``http 4xx`` in the mock's delivery journal; target 0: a push that beats the create's
answer is the job's all the same).

    python bench/e2e.py [--jobs 1000] [--concurrency 64] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import sys
from pathlib import Path

import httpx
from _harness import (
    API_KEY,
    IMAGE_URL,
    MockProcess,
    child_env,
    emit,
    install_sigterm_exit,
    run_child,
    run_mmgen,
    status_records,
    workdir,
    write_jobs,
)

PROMPT = "A girl runs toward the camera and winks with a smile."
TARGET_RATIO = 1.25


# --- the bare loop (runs in its own process) ------------------------------------------------


async def bare_job(
    http: httpx.AsyncClient, out: Path, n: int, poll_interval: float, gate: asyncio.Semaphore
) -> None:
    async with gate:
        body = {
            "model": "S2V-01",
            "prompt": PROMPT,
            "subject_reference": [{"type": "character", "image": [IMAGE_URL]}],
        }
        created = (await http.post("/v1/video_generation", json=body)).json()
        task_id = created["task_id"]
        while True:
            await asyncio.sleep(poll_interval)  # as mmgen: a fresh task is asked after a beat
            status = (
                await http.get("/v1/query/video_generation", params={"task_id": task_id})
            ).json()
            if status["status"] == "Success":
                break
            if status["status"] == "Fail":
                raise RuntimeError(f"task {task_id} failed")
        info = (await http.get("/v1/files/retrieve", params={"file_id": status["file_id"]})).json()
        url = info["file"]["download_url"]
        dest = out / f"job{n:05d}.mp4"
        tmp = out / f".job{n:05d}.mp4.part"
        digest = hashlib.sha256()
        with tmp.open("wb") as handle:
            request = http.build_request("GET", url)
            del request.headers["Authorization"]  # the CDN URL never sees the API key
            response = await http.send(request, stream=True)
            try:
                response.raise_for_status()
                async for chunk in response.aiter_bytes(1 << 16):
                    handle.write(chunk)
                    digest.update(chunk)
            finally:
                await response.aclose()
            handle.flush()
            await asyncio.to_thread(os.fsync, handle.fileno())
        os.replace(tmp, dest)


async def bare_loop(url: str, jobs: int, concurrency: int, out: Path, poll: float) -> None:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=url,
        headers={"Authorization": f"Bearer {API_KEY}"},
        limits=limits,
        timeout=120,
        trust_env=False,
    ) as http:
        gate = asyncio.Semaphore(concurrency)
        await asyncio.gather(*(bare_job(http, out, n, poll, gate) for n in range(jobs)))


def pushes_refused(mock_url: str) -> int:
    """Status pushes the mock delivered and mmgen's listener answered 4xx (the journal)."""
    with httpx.Client(base_url=mock_url, trust_env=False, timeout=60) as http:
        tasks = http.get("/_mock/tasks").json()["tasks"]
    return sum(
        1
        for task in tasks
        for entry in task.get("callbacks", [])
        if entry.get("kind") == "update" and str(entry.get("result", "")).startswith("http 4")
    )


# --- the comparison --------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the best of each counts")
    parser.add_argument(
        "--poll-interval",
        type=float,
        default=0.05,
        help="the bare loop's wait before each query (mmgen runs with its defaults)",
    )
    parser.add_argument("--cap", type=float, default=600, help="wall cap per side and round (s)")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder")
    parser.add_argument("--bare-worker", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_worker:
        asyncio.run(
            bare_loop(args.bare_worker, args.jobs, args.concurrency, args.out, args.poll_interval)
        )
        return

    install_sigterm_exit()
    print(
        f"e2e: {args.jobs} jobs, 0 s generation, one shared prompt, concurrency "
        f"{args.concurrency}, mmgen with its defaults, best of {args.repeat}"
    )
    walls: dict[str, list[float | None]] = {"mmgen": [], "bare": []}
    cpu: dict[str, list[float]] = {"mmgen": [], "bare": []}
    problems: list[str] = []
    refused: list[int] = []
    with workdir("mmgen-bench-e2e-", args.keep) as tmp:
        spec = write_jobs(tmp / "jobs.yaml", [PROMPT] * args.jobs)
        with MockProcess(generation_seconds=0, seed=1, log_file=tmp / "mock.log") as mock:
            for round_ in range(1, args.repeat + 1):
                for side in ("mmgen", "bare"):
                    mock.reset()
                    out = tmp / f"out-{side}-{round_}"
                    out.mkdir()
                    stderr = tmp / f"{side}-{round_}.stderr"
                    if side == "mmgen":
                        run = run_mmgen(
                            spec,
                            out,
                            mock.url,
                            concurrency=args.concurrency,
                            cap=args.cap,
                            stderr_path=stderr,
                        )
                        refused.append(pushes_refused(mock.url))
                    else:
                        command = [sys.executable, __file__, "--bare-worker", mock.url]
                        command += ["--jobs", str(args.jobs), "--out", str(out)]
                        command += ["--concurrency", str(args.concurrency)]
                        command += ["--poll-interval", str(args.poll_interval)]
                        run = run_child(command, stderr_path=stderr, cap=args.cap, env=child_env())
                    if side == "mmgen":  # NAME.mp4 is the current one of NAME.<hash8>.mp4
                        videos = sum(r["state"] == "success" for r in status_records(out))
                    else:
                        videos = sum(1 for p in out.rglob("*.mp4"))
                    created = mock.stats()["created"]
                    ok = run.exit_code == 0 and videos == args.jobs
                    if not ok:
                        tail = " | ".join(run.stderr_lines()[-3:])
                        problems.append(
                            f"{side} round {round_}: exit {run.exit_code}, {videos} videos: {tail}"
                        )
                    walls[side].append(run.wall if ok else None)
                    cpu[side].append(run.cpu)
                    print(
                        f"round {round_} {side:5}: {run.wall:7.2f} s wall, {run.cpu:6.1f} s CPU, "
                        f"{run.max_rss_mb:5.0f} MB peak RSS, {videos} videos, "
                        f"{created} tasks created{'' if ok else ' (FAILED)'}",
                        flush=True,
                    )
    best = {side: min((w for w in ws if w is not None), default=None) for side, ws in walls.items()}
    ratio = (
        round(best["mmgen"] / best["bare"], 3)
        if best["mmgen"] is not None and best["bare"]
        else None
    )
    for problem in problems:
        print(f"problem: {problem}")
    if ratio is not None:
        print(
            f"best: mmgen {best['mmgen']:.2f} s, bare httpx {best['bare']:.2f} s, "
            f"ratio {ratio:.2f} (target <= {TARGET_RATIO})"
        )
    emit(
        {
            "bench": "e2e",
            "jobs": args.jobs,
            "concurrency": args.concurrency,
            "pushes_refused": refused,
            "repeat": args.repeat,
            "mmgen_wall_s": [None if w is None else round(w, 3) for w in walls["mmgen"]],
            "bare_wall_s": [None if w is None else round(w, 3) for w in walls["bare"]],
            "mmgen_cpu_s": [round(c, 2) for c in cpu["mmgen"]],
            "bare_cpu_s": [round(c, 2) for c in cpu["bare"]],
            "mmgen_best_s": None if best["mmgen"] is None else round(best["mmgen"], 3),
            "bare_best_s": None if best["bare"] is None else round(best["bare"], 3),
            "ratio": ratio,
            "target_ratio": TARGET_RATIO,
            "met": ratio is not None and ratio <= TARGET_RATIO and not any(refused),
            "problems": problems,
        }
    )
    if problems:
        sys.exit(1)


if __name__ == "__main__":
    main()
