"""How long `validate_paths` takes on 10,000 generated jobs.

Generates 100 job files of 100 jobs each in a temp dir (defaults + jobs; a mix of models, a
matrix, ${VAR} interpolation and one local image shared by many jobs), validates them and prints
the time and the rate: a human line, then one JSON object as the last line
(``{"bench": "validate", "files": ..., "jobs": ..., "seconds": ..., "jobs_per_second": ...}``).
Usage: ``python bench/bench_validate.py [JOBS]``.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from mmgen.jobfile.spec import validate_paths

ROOT = Path(__file__).resolve().parent.parent
PER_FILE = 100


def job(i: int) -> str:
    kind = i % 4
    if kind == 0:  # S2V-01, URL
        return (
            f"  - name: s2v-url-{i}\n"
            f"    prompt: A girl runs toward the camera, take {i}.\n"
            "    subject_reference:\n"
            f"      - {{type: character, image: ['https://example.org/face-{i}.jpg']}}\n"
        )
    if kind == 1:  # S2V-01, local image (checked once, then cached)
        return (
            f"  - name: s2v-local-{i}\n"
            "    prompt: ${BENCH_PROMPT}\n"
            "    subject_reference:\n"
            "      - {type: character, image: [face.png]}\n"
        )
    if kind == 2:  # Hailuo text-to-video
        return (
            f"  - name: hailuo-{i}\n"
            "    model: MiniMax-Hailuo-02\n"
            f"    prompt: A cat jumps, take {i}. [Pan left]\n"
            "    duration: 10\n"
            "    resolution: 768P\n"
        )
    # a matrix of 1 x 1 so that every file has one (counts as one job)
    return (
        f"  - name: matrix-{i}\n"
        "    model: T2V-01\n"
        "    prompt: ${matrix.p}\n"
        "    matrix:\n"
        f"      p: {{only: 'A dog, take {i}.'}}\n"
    )


def generate(folder: Path, jobs: int) -> None:
    shutil.copy(ROOT / "specs" / "images" / "face.png", folder / "face.png")
    for start in range(0, jobs, PER_FILE):
        body = "".join(job(i) for i in range(start, min(start + PER_FILE, jobs)))
        text = "defaults:\n  model: S2V-01\n  prompt_optimizer: false\njobs:\n" + body
        (folder / f"jobs-{start // PER_FILE:04d}.yaml").write_text(text, encoding="utf-8")


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        generate(folder, count)
        started = time.perf_counter()
        result = validate_paths([folder], env={"BENCH_PROMPT": "A prompt from the environment"})
        elapsed = time.perf_counter() - started
    if result.problems:
        for problem in result.problems[:10]:
            print(problem)
        raise SystemExit(f"benchmark input is invalid: {len(result.problems)} problems")
    assert len(result.jobs) == count, len(result.jobs)
    rate = len(result.jobs) / elapsed
    print(
        f"validate_paths: {len(result.files)} files, {len(result.jobs)} jobs in {elapsed:.2f} s "
        f"({rate:,.0f} jobs/s)"
    )
    figures = {
        "bench": "validate",
        "files": len(result.files),
        "jobs": len(result.jobs),
        "seconds": round(elapsed, 3),
        "jobs_per_second": round(rate),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
