"""How long `mmgen -q validate` takes on one job file of 10,000 jobs (issue 19's plan target).

The file is what a large project writes: ``defaults:`` (model S2V-01 and a subject image URL),
then ``jobs:`` of ``name`` + ``prompt`` (``_harness.write_jobs``). ``mmgen -q validate FILE``
runs as a child process with its default options, ``--repeat`` times; wall and CPU time (user +
system, from ``wait4``) and peak RSS of each run are printed, then one JSON object as the last
line with the best and median of each and whether the target (wall <= 1.5 s, so that ``plan``
of 10,000 finished jobs fits in 2 s) was met by the best run.

    python bench/bench_load.py [--jobs 10000] [--repeat 3] [--target 1.5]
"""

from __future__ import annotations

import argparse
import statistics

from _harness import (
    emit,
    install_sigterm_exit,
    mmgen_command,
    run_child,
    workdir,
    write_jobs,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000, help="jobs in the file")
    parser.add_argument("--repeat", type=int, default=3, help="runs of mmgen validate")
    parser.add_argument("--target", type=float, default=1.5, help="target wall seconds")
    parser.add_argument("--cap", type=float, default=120.0, help="wall cap of one run (s)")
    args = parser.parse_args()
    install_sigterm_exit()

    with workdir("mmgen-bench-load-") as folder:
        prompts = [f"A girl runs toward the camera and winks, take {n}." for n in range(args.jobs)]
        spec = write_jobs(folder / "jobs.yaml", prompts)
        runs = []
        for attempt in range(args.repeat):
            run = run_child(
                mmgen_command("-q", "validate", str(spec)),
                stderr_path=folder / f"stderr-{attempt}.txt",
                cap=args.cap,
            )
            if run.exit_code != 0:
                tail = "\n".join(run.stderr_lines()[-10:])
                raise SystemExit(f"mmgen validate exited {run.exit_code}:\n{tail}")
            print(
                f"run {attempt + 1}: {args.jobs} jobs validated in {run.wall:.2f} s wall, "
                f"{run.cpu:.2f} s CPU, peak RSS {run.max_rss_mb:.0f} MB"
            )
            runs.append(run)

    walls = [r.wall for r in runs]
    cpus = [r.cpu for r in runs]
    emit(
        {
            "bench": "load",
            "jobs": args.jobs,
            "repeat": args.repeat,
            "wall_best_s": round(min(walls), 3),
            "wall_median_s": round(statistics.median(walls), 3),
            "cpu_best_s": round(min(cpus), 3),
            "cpu_median_s": round(statistics.median(cpus), 3),
            "max_rss_mb": round(max(r.max_rss_mb for r in runs), 1),
            "target_wall_s": args.target,
            "met": min(walls) <= args.target,
        }
    )


if __name__ == "__main__":
    main()
