"""Crash soak: SIGKILL `mmgen run` at random instants under chaos, then check nothing was lost.

Issue 9's proof of "kill it and run it again". The mock runs in its own process (``mmgen mock
--port 0 --config CHAOS``) with a chaos profile: 1002 rate limits, HTTP 5xx, dropped
connections (a dropped create may have created its task: mmgen must report it ``unknown``),
expired, truncated and slow downloads (so kills land mid-download too), dropped, duplicated,
reordered and delayed callbacks, rejected challenges. Then:

1. ``--kills`` times: start ``mmgen -q run JOBS --wait auto --listen 127.0.0.1:PORT`` (one port
   for every run, so callbacks of earlier runs' tasks reach the later ones), let it run a
   random 0.3-3 s (seeded), SIGKILL it (no chance to clean up: torn journal lines, temp files
   and creates in flight are left behind).
2. Run it to completion: plain runs until only ``unknown`` jobs are left (a submit whose answer
   was lost: by a kill, or by a dropped create); those, and only those, are then submitted
   again with ``--resubmit-unknown`` (counted: they may legitimately exist twice).
3. Check: every job's prompt was created once, plus once per explicit resubmit (from the
   request bodies in ``/_mock/tasks``); every job is ``success`` in ``mmgen status --format
   json``, its record points at one of its own tasks, its video file on disk has the recorded
   sha256, and that is the sha256 of what the mock serves for the task (downloaded here).

The verdict must hold for any kill instant; a failure is a bug in mmgen (reproduce with the
printed ``--seed``). ``tests/test_run_soak.py`` runs a smaller size in CI.

    python bench/soak.py [--jobs 500] [--kills 20] [--seed 9] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from _harness import (
    API_KEY,
    MockProcess,
    child_env,
    emit,
    install_sigterm_exit,
    mmgen_command,
    run_mmgen,
    status_records,
    stop_process,
    workdir,
    write_jobs,
)

from mmgen.state.store import open_store

#: Every fault kind of tests/test_run_e2e.py's chaos test (at lower odds: a soak makes
#: thousands of requests), plus creates answered by a gateway's 5xx page or a dropped
#: connection after the task was made (issue 18: adopted from the task's pushes, or unknown).
CHAOS_PROFILE = """\
generation_seconds: {generation}
generation_jitter: {jitter}
report_file_bytes: true
faults:
  rate_limit: {{probability: 0.05, endpoints: [create, query]}}
  server_errors: {{create: 0.05, query: 0.05, retrieve: 0.05, download: 0.05, status: {status},
                  create_commits: true}}
  drops: {{create: 0.02, create_commits: true, query: 0.05, retrieve: 0.05, download: 0.05}}
  callbacks: {{drop: 0.2, duplicate: 0.2, reorder: 0.2, delay: 0.2, delay_seconds: 1}}
  challenge: {{probability: 0.1, mode: reject}}
  downloads: {{truncate_probability: 0.1, truncate_mode: abort, expired_probability: 0.1,
              slow_probability: 0.1, bytes_per_second: 50000}}
"""


@dataclass
class SoakResult:
    """What a soak did and found; ``ok`` when nothing was duplicated, lost or corrupted."""

    jobs: int
    kills_landed: int = 0  # SIGKILLs sent to a running mmgen
    runs_finished_early: int = 0  # runs that ended before their kill instant
    final_runs: int = 0
    resubmitted: Counter[str] = field(default_factory=Counter)  # job -> explicit resubmits
    tasks_created: int = 0
    faults_fired: int = 0
    duplicates: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    states: Counter[str] = field(default_factory=Counter)
    wall: float = 0.0

    @property
    def ok(self) -> bool:
        return not (self.duplicates or self.lost or self.mismatched)

    def to_json(self) -> dict[str, Any]:
        return {
            "jobs": self.jobs,
            "kills_landed": self.kills_landed,
            "runs_finished_early": self.runs_finished_early,
            "final_runs": self.final_runs,
            "unknown_resubmitted": sum(self.resubmitted.values()),
            "tasks_created": self.tasks_created,
            "faults_fired": self.faults_fired,
            "duplicates": len(self.duplicates),
            "lost": len(self.lost),
            "sha256_mismatches": len(self.mismatched),
            "states": dict(self.states),
            "wall_s": round(self.wall, 1),
            "ok": self.ok,
            "problems": (self.duplicates + self.lost + self.mismatched)[:20],
        }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def prompt_of(n: int) -> str:
    return f"Soak scene {n}: the subject turns and smiles."


def served_sha256(http: httpx.Client, file_id: str, attempts: int = 60) -> tuple[str, int]:
    """sha256 and size of what the mock serves for ``file_id``, through its faults (retried:
    every fault is a coin toss, and a truncated body is caught by its Content-Length)."""
    last = "no attempt"
    for _ in range(attempts):
        try:
            info = http.get("/v1/files/retrieve", params={"file_id": file_id})
            data = info.json()
            if info.status_code != 200 or data["base_resp"]["status_code"] != 0:
                last = f"retrieve: HTTP {info.status_code} {data.get('base_resp')}"
                continue
            announced = int(data["file"]["bytes"] or 0)  # 0: unknown, as MiniMax answers
            with httpx.Client(trust_env=False, timeout=60) as cdn:  # no API key to the CDN
                video = cdn.get(data["file"]["download_url"])
            size = len(video.content)
            expected = int(video.headers.get("content-length", -1))
            if video.status_code != 200 or size != expected or announced not in (0, size):
                last = f"download: HTTP {video.status_code}, {size} of {expected} bytes"
                continue
            return hashlib.sha256(video.content).hexdigest(), size
        except (httpx.HTTPError, ValueError, KeyError) as err:
            last = f"{type(err).__name__}: {err}"
        time.sleep(0.05)
    raise RuntimeError(f"could not download file {file_id} from the mock: {last}")


def run_soak(
    tmp: Path,
    *,
    jobs: int,
    kills: int,
    seed: int,
    concurrency: int,
    generation_seconds: float = 2.0,
    status: int = 503,
    final_cap: float = 300.0,
    final_rounds: int = 8,
    log: Callable[[str], None] = print,
    store: str | None = None,
) -> SoakResult:
    """The whole soak in ``tmp``; returns its findings (raises only when it cannot run)."""
    started = time.perf_counter()
    result = SoakResult(jobs=jobs)
    rng = random.Random(seed)
    config = tmp / "chaos.yaml"
    config.write_text(
        CHAOS_PROFILE.format(
            generation=generation_seconds, jitter=generation_seconds / 2, status=status
        )
    )
    prompts = [prompt_of(n) for n in range(jobs)]
    names = [f"job{n:05d}" for n in range(jobs)]
    spec = write_jobs(tmp / "jobs.yaml", prompts, names=names)
    out: Path | str = store or tmp / "out"
    listen = [f"127.0.0.1:{free_port()}"]

    def common() -> list[str]:
        return ["--wait", "auto", "--listen", listen[0], "--poll-interval", "1"]

    def port_taken(stderr: Path) -> bool:
        """The listen port was taken meanwhile (by another program): choose another one."""
        if "cannot listen" not in stderr.read_text(errors="replace"):
            return False
        listen[0] = f"127.0.0.1:{free_port()}"
        log(f"the listen port was taken: now {listen[0]}")
        return True

    with MockProcess(seed=seed, config_file=config, log_file=tmp / "mock.log") as mock:
        args = mmgen_command("-q", "run", str(spec), "--base-url", mock.url, "--rpm", "0")
        args += ["--out", str(out), "--concurrency", str(concurrency)]
        env = child_env(MINIMAX_API_KEY=API_KEY)
        for k in range(1, kills + 1):
            delay = rng.uniform(0.3, 3.0)
            stderr = tmp / f"kill-{k}.stderr"
            with open(stderr, "w", encoding="utf-8") as err:
                proc = subprocess.Popen(
                    [*args, *common()],
                    stdout=subprocess.DEVNULL,
                    stderr=err,
                    stdin=subprocess.DEVNULL,
                    env=env,
                    start_new_session=True,
                )
                try:
                    code = proc.wait(delay)
                except subprocess.TimeoutExpired:
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait(30)
                    result.kills_landed += 1
                    log(f"kill {k}: SIGKILL after {delay:.2f} s")
                    continue
                finally:
                    stop_process(proc)
            result.runs_finished_early += 1
            log(f"kill {k}: the run ended by itself (exit {code}) within {delay:.2f} s")
            if code == 2 and port_taken(stderr):
                continue
            if code == 0:
                break  # everything is done: nothing left to kill
        resubmit = False
        for round_ in range(1, final_rounds + 1):
            extra = [*common(), "--resubmit-unknown"] if resubmit else common()
            if resubmit:
                unknown = [r["job"] for r in status_records(out) if r["state"] == "unknown"]
                result.resubmitted.update(unknown)
                log(f"final run {round_}: --resubmit-unknown for {len(unknown)} unknown jobs")
            run = run_mmgen(
                spec,
                out,
                mock.url,
                concurrency=concurrency,
                cap=final_cap,
                stderr_path=tmp / f"final-{round_}.stderr",
                extra=extra,
            )
            result.final_runs = round_
            states = Counter(r["state"] for r in status_records(out))
            log(f"final run {round_}: exit {run.exit_code} in {run.wall:.1f} s; {dict(states)}")
            if run.exit_code == 0:
                break
            if run.exit_code == 2 and port_taken(run.stderr_path):
                continue
            # only unknown jobs left: the user decides to resubmit them (counted)
            resubmit = set(states) <= {"success", "unknown"} and states["unknown"] > 0
        records = {r["job"]: r for r in status_records(out)}
        tasks = mock.tasks()
        stats = mock.stats()
        result.tasks_created = len(tasks)
        result.faults_fired = sum(stats.get("faults", {}).values())
        check(result, records, tasks, names, prompts, out, mock.url)
    result.wall = time.perf_counter() - started
    return result


def check(
    result: SoakResult,
    records: dict[str, dict[str, Any]],
    tasks: list[dict[str, Any]],
    names: list[str],
    prompts: list[str],
    out: Path | str,
    base_url: str,
) -> None:
    """Fill in the verdict: duplicates, lost outcomes, sha256 mismatches."""
    job_of_prompt = dict(zip(prompts, names, strict=True))
    tasks_of: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for task in tasks:
        job = job_of_prompt.get(str(task["request"].get("prompt")))
        if job is None:
            result.duplicates.append(f"task {task['task_id']} has a prompt of no job")
            continue
        tasks_of[job].append(task)
    for name in names:
        allowed = 1 + result.resubmitted[name]
        if len(tasks_of[name]) > allowed:
            result.duplicates.append(
                f"{name}: created {len(tasks_of[name])} times "
                f"({result.resubmitted[name]} explicit resubmits)"
            )
    to_download: list[tuple[str, dict[str, Any]]] = []
    for name in names:
        record = records.get(name)
        result.states[record["state"] if record else "missing"] += 1
        if record is None or record["state"] != "success":
            state = record["state"] if record else "no record"
            error = (record or {}).get("error")
            result.lost.append(f"{name}: {state} {error or ''}".rstrip())
            continue
        own = {t["task_id"]: t for t in tasks_of[name]}
        own_task = own.get(str(record["task_id"]))
        if own_task is None or str(own_task["file_id"]) != str(record["file_id"]):
            result.mismatched.append(
                f"{name}: record task {record['task_id']} / file {record['file_id']} "
                f"is not one of its tasks {sorted(own)}"
            )
            continue
        on_disk = open_store(out).sha256(record["video"])
        if on_disk != record["sha256"]:
            result.mismatched.append(
                f"{name}: {record['video']} has sha256 {on_disk}, "
                f"the record says {record['sha256']}"
            )
            continue
        to_download.append((name, record))
    headers = {"Authorization": f"Bearer {API_KEY}"}
    with (
        httpx.Client(base_url=base_url, headers=headers, trust_env=False, timeout=60) as http,
        ThreadPoolExecutor(8) as pool,  # slow downloads are slow by design: overlap them
    ):
        served = pool.map(lambda item: served_sha256(http, str(item[1]["file_id"])), to_download)
        for (name, record), (digest, size) in zip(to_download, served, strict=True):
            if digest != record["sha256"] or size != record["bytes"]:
                result.mismatched.append(
                    f"{name}: recorded sha256 {record['sha256']} ({record['bytes']} bytes), "
                    f"the mock serves {digest} ({size} bytes)"
                )


@contextlib.contextmanager
def moto_bucket() -> Iterator[str]:
    """A bucket of moto's S3 server on loopback; the AWS environment of the children points at
    it. Yields ``s3://bucket/soak``."""
    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        os.environ.update(
            AWS_ENDPOINT_URL=f"http://{host}:{port}",
            AWS_ACCESS_KEY_ID="soak",
            AWS_SECRET_ACCESS_KEY="soak-secret",
            AWS_REGION="us-east-1",
        )
        boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"]).create_bucket(
            Bucket="mmgen-soak"
        )
        yield "s3://mmgen-soak/soak"
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=9, help="kill instants and mock faults")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--generation-seconds", type=float, default=2.0)
    parser.add_argument("--cap", type=float, default=600, help="wall cap per final run (s)")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder")
    parser.add_argument(
        "--statuses",
        default="500,502,503,504",
        help="the 5xx of the chaos profile (a create answered so still made its task): one "
        "soak per status, comma-separated",
    )
    parser.add_argument(
        "--store",
        action="store_true",
        help="the out dir in a bucket of moto's S3 server on loopback (started here)",
    )
    args = parser.parse_args()
    install_sigterm_exit()
    statuses = [int(s) for s in args.statuses.split(",") if s.strip()]
    results: dict[str, Any] = {}
    ok = True
    for status in statuses:
        print(
            f"soak: {args.jobs} jobs under chaos (5xx: {status}, the task made), "
            f"{args.kills} SIGKILLs, seed {args.seed}, concurrency {args.concurrency}, "
            f"generation {args.generation_seconds:g} s"
            + (", out dir in a bucket" if args.store else "")
        )
        with workdir("mmgen-bench-soak-", args.keep) as tmp, contextlib.ExitStack() as stack:
            store = stack.enter_context(moto_bucket()) if args.store else None
            result = run_soak(
                tmp,
                jobs=args.jobs,
                kills=args.kills,
                seed=args.seed,
                concurrency=args.concurrency,
                generation_seconds=args.generation_seconds,
                status=status,
                final_cap=args.cap,
                log=lambda line: print(line, flush=True),
                store=store,
            )
        for problem in result.duplicates + result.lost + result.mismatched:
            print(f"problem: {problem}")
        print(
            f"{result.kills_landed} kills landed, {result.tasks_created} tasks for "
            f"{args.jobs} jobs ({sum(result.resubmitted.values())} explicit resubmits of "
            f"unknown jobs), {result.faults_fired} faults fired; duplicates "
            f"{len(result.duplicates)}, lost {len(result.lost)}, sha256 mismatches "
            f"{len(result.mismatched)}; {result.wall:.0f} s"
        )
        results[str(status)] = result.to_json()
        ok = ok and result.ok
    emit(
        {
            "bench": "soak",
            "seed": args.seed,
            "kills": args.kills,
            "store": args.store,
            "duplicates": sum(r["duplicates"] for r in results.values()),
            "lost": sum(r["lost"] for r in results.values()),
            "sha256_mismatches": sum(r["sha256_mismatches"] for r in results.values()),
            "ok": ok,
            "by_status": results,
        }
    )
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
