"""10,000 jobs in flight at once: wall time, peak RSS, and the 3 s challenge under that load.

The mock runs in its own process (``mmgen mock --port 0 --generation-seconds 30``); ``mmgen -q
run JOBS --concurrency N --wait auto`` in another: mmgen's callback listener binds 127.0.0.1:0
and puts its URL into every create; the mock challenges it (the receiver must echo within 3 s)
and pushes the status changes. All jobs share one prompt (the mock renders one video).

Reported: wall time (target <= 150 s for 10,000 jobs), mmgen's peak RSS and CPU time (the
kernel's rusage of the child), challenges failed (target 0) and the challenge answer latency
p50/p99 as the mock measured it: ``challenge_latency_ms`` of ``/_mock/stats`` when the mock has
it, else from the ``elapsed_ms`` of each challenge in the ``/_mock/tasks`` delivery journal
(``latency_source`` says which). A run still going at ``--cap`` seconds is stopped (SIGTERM,
then SIGKILL) and reported with what it got done.

    python bench/inflight.py [--jobs 10000] [--generation-seconds 30] [--cap 600]
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from _harness import (
    MockProcess,
    emit,
    install_sigterm_exit,
    run_mmgen,
    status_records,
    summary_ms,
    workdir,
    write_jobs,
)

PROMPT = "A girl runs toward the camera and winks with a smile."
TARGET_WALL_S = 150.0  # for 10,000 jobs
TARGET_RSS_MB = 200.0


def challenge_latency(
    stats: dict[str, Any], tasks: list[dict[str, Any]]
) -> tuple[dict[str, Any], str]:
    """p50/p99/max of the challenge answers, from the mock's stats or its journal."""
    from_stats = stats.get("challenge_latency_ms")
    if isinstance(from_stats, dict):
        return from_stats, "stats"
    elapsed = [
        entry["elapsed_ms"] / 1000
        for task in tasks
        for entry in task.get("callbacks", [])
        if entry.get("kind") == "challenge" and entry.get("elapsed_ms") is not None
    ]
    return summary_ms(elapsed), "journal"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, help="mmgen --concurrency (default: --jobs)")
    parser.add_argument("--generation-seconds", type=float, default=30.0)
    parser.add_argument("--cap", type=float, default=600, help="wall cap of the run (s)")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder")
    args = parser.parse_args()
    install_sigterm_exit()
    concurrency = args.concurrency or args.jobs
    print(
        f"inflight: {args.jobs} jobs, generation {args.generation_seconds:g} s, "
        f"--concurrency {concurrency} --wait auto, cap {args.cap:g} s"
    )
    with workdir("mmgen-bench-inflight-", args.keep) as tmp:
        spec = write_jobs(tmp / "jobs.yaml", [PROMPT] * args.jobs)
        out = tmp / "out"
        with MockProcess(
            generation_seconds=args.generation_seconds, seed=1, log_file=tmp / "mock.log"
        ) as mock:
            run = run_mmgen(
                spec,
                out,
                mock.url,
                concurrency=concurrency,
                cap=args.cap,
                stderr_path=tmp / "mmgen.stderr",
                extra=["--wait", "auto"],
            )
            stats = mock.stats()
            tasks = mock.tasks()
        records = status_records(out)
        warnings = sum(1 for line in run.stderr_lines() if line.strip())
        last_lines = run.stderr_lines()[-3:]
    latency, source = challenge_latency(stats, tasks)
    succeeded = sum(1 for r in records if r.get("state") == "success")
    failed_challenges = int(stats.get("challenges_failed", 0))
    print(
        f"wall {run.wall:.1f} s{' (stopped at the cap)' if run.capped else ''}, exit "
        f"{run.exit_code}, CPU {run.cpu:.1f} s, peak RSS {run.max_rss_mb:.0f} MB; "
        f"{stats.get('created')} tasks created, {succeeded}/{args.jobs} jobs recorded success"
    )
    print(f"requests the mock answered, by endpoint: {stats.get('requests', {})}")
    print(
        f"challenges: {stats.get('challenges_sent', 0)} sent, {stats.get('challenges_ok', 0)} "
        f"answered, {failed_challenges} failed; answer latency p50 {latency.get('p50')} ms, "
        f"p99 {latency.get('p99')} ms, max {latency.get('max')} ms (from the mock's {source})"
    )
    print(
        f"callbacks: {stats.get('callbacks_delivered', 0)} delivered, "
        f"{stats.get('callbacks_failed', 0)} failed; {warnings} lines on mmgen's stderr"
    )
    for line in last_lines:
        print(f"  stderr: {line[:200]}")
    done = run.exit_code == 0 and succeeded == args.jobs
    emit(
        {
            "bench": "inflight",
            "jobs": args.jobs,
            "concurrency": concurrency,
            "generation_seconds": args.generation_seconds,
            "wall_s": round(run.wall, 2),
            "capped": run.capped,
            "exit_code": run.exit_code,
            "cpu_s": round(run.cpu, 2),
            "peak_rss_mb": round(run.max_rss_mb, 1),
            "tasks_created": stats.get("created"),
            "mock_requests": stats.get("requests", {}),
            "jobs_succeeded": succeeded,
            "challenges_sent": stats.get("challenges_sent", 0),
            "challenges_failed": failed_challenges,
            "challenge_latency_ms": latency,
            "latency_source": source,
            "callbacks_delivered": stats.get("callbacks_delivered", 0),
            "callbacks_failed": stats.get("callbacks_failed", 0),
            "stderr_lines": warnings,
            "target": {
                "wall_s": TARGET_WALL_S,
                "peak_rss_mb": TARGET_RSS_MB,
                "challenges_failed": 0,
                "challenge_p99_ms": 100,
            },
            "met": done
            and run.wall <= TARGET_WALL_S
            and run.max_rss_mb <= TARGET_RSS_MB
            and failed_challenges == 0,
        }
    )
    if not done:
        sys.exit(1)


if __name__ == "__main__":
    main()
