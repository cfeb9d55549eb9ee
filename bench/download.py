"""A 1 GB video from the mock: mmgen's client download against curl, and its RSS growth.

The mock runs in its own process (``mmgen mock --port 0 --config FILE``) with the config option
``video.min_bytes`` (the MP4 padded to at least that size). One task is created, waited for
and retrieved with httpx; then, against the same download URL, ``--repeat`` times each:

- mmgen: a child process (this file with ``--client-worker``) calling
  ``MiniMaxClient.download`` (streamed to a temp file next to the destination with sha256,
  fsync'd, renamed). It resets its peak-RSS mark (``/proc/self/clear_refs``) just before the
  download, so ``VmHWM - VmRSS`` afterwards is what the download grew (target <= 50 MB);
- ``curl -sS --fail -o FILE URL`` (then, separately timed, one fsync of the file, which mmgen
  also does: curl hashes nothing and leaves the data in the page cache).

    python bench/download.py [--megabytes 1024] [--repeat 2]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from _harness import (
    API_KEY,
    IMAGE_URL,
    MockProcess,
    child_env,
    emit,
    install_sigterm_exit,
    run_child,
    workdir,
)

TARGET_RSS_GROWTH_MB = 50.0
OPTION = "video.min_bytes"


def proc_status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def client_worker(url: str, dest: Path) -> None:
    """In the child: one MiniMaxClient download, timed, with its RSS growth; prints JSON."""
    from mmgen.api.client import MiniMaxClient

    async def go() -> dict[str, Any]:
        async with MiniMaxClient(API_KEY, "http://127.0.0.1") as client:
            Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS from here on
            before = proc_status_kb("VmRSS")
            started = time.perf_counter()
            got = await client.download(url, dest)
            seconds = time.perf_counter() - started
            return {
                "seconds": seconds,
                "bytes": got.bytes,
                "sha256": got.sha256,
                "rss_before_kb": before,
                "peak_kb": proc_status_kb("VmHWM"),
            }

    print(json.dumps(asyncio.run(go())))


def make_video(mock: MockProcess) -> tuple[str, int]:
    """Create one task, wait for its Success, retrieve it: (download URL, announced bytes)."""
    headers = {"Authorization": f"Bearer {API_KEY}"}
    with httpx.Client(base_url=mock.url, headers=headers, trust_env=False, timeout=600) as http:
        body = {
            "model": "S2V-01",
            "prompt": "A very long take.",
            "subject_reference": [{"type": "character", "image": [IMAGE_URL]}],
        }
        task_id = http.post("/v1/video_generation", json=body).json()["task_id"]
        deadline = time.monotonic() + 60
        while True:
            status = http.get("/v1/query/video_generation", params={"task_id": task_id}).json()
            if status.get("status") == "Success":
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"task {task_id} not done after 60 s: {status}")
            time.sleep(0.2)
        info = http.get("/v1/files/retrieve", params={"file_id": status["file_id"]}).json()
        return info["file"]["download_url"], int(info["file"]["bytes"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=1024, help="video size (MiB)")
    parser.add_argument("--repeat", type=int, default=2, help="downloads per client; best counts")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder")
    parser.add_argument("--client-worker", nargs=2, metavar=("URL", "DEST"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client_worker:
        client_worker(args.client_worker[0], Path(args.client_worker[1]))
        return
    install_sigterm_exit()
    size = args.megabytes * 1024 * 1024
    curl = shutil.which("curl")
    print(f"download: a {args.megabytes} MiB video, mmgen's client vs curl, {args.repeat} each")
    results: dict[str, list[dict[str, Any]]] = {"mmgen": [], "curl": []}
    with workdir("mmgen-bench-download-", args.keep) as tmp:
        config = tmp / "mock.yaml"
        config.write_text(
            f"video:\n  min_bytes: {size}\nreport_file_bytes: true\ngeneration_seconds: 0\n"
        )
        stack = contextlib.ExitStack()
        try:
            mock = stack.enter_context(
                MockProcess(seed=1, config_file=config, log_file=tmp / "mock.log")
            )
        except RuntimeError as err:
            log = (tmp / "mock.log").read_text(errors="replace")
            if OPTION in log:
                message = (
                    f"the mock has no '{OPTION}' config option yet (issue 8 adds it: the MP4 "
                    f"padded to a given size); this benchmark needs it to serve a "
                    f"{args.megabytes} MiB video. The mock said: {log.strip().splitlines()[-1]}"
                )
            else:
                message = f"the mock did not start: {err}"
            print(f"download: {message}", file=sys.stderr)
            emit({"bench": "download", "error": message, "met": False})
            sys.exit(2)
        with stack:
            url, announced = make_video(mock)
            print(f"the mock announces {announced} bytes")
            for n in range(args.repeat):
                dest = tmp / f"mmgen-{n}.mp4"
                worker_out = tmp / f"worker-{n}.json"
                run = run_child(
                    [sys.executable, __file__, "--client-worker", url, str(dest)],
                    stderr_path=tmp / f"worker-{n}.stderr",
                    stdout_path=worker_out,
                    cap=1800,
                    env=child_env(),
                )
                if run.exit_code != 0:
                    tail = " | ".join(run.stderr_lines()[-3:])
                    raise RuntimeError(f"mmgen's download failed: {tail}")
                got = json.loads(worker_out.read_text())
                got["growth_mb"] = max(0, got["peak_kb"] - got["rss_before_kb"]) / 1024
                got["mb_per_s"] = got["bytes"] / got["seconds"] / 1e6
                results["mmgen"].append(got)
                dest.unlink()
                print(
                    f"mmgen {n + 1}: {got['seconds']:.2f} s, {got['mb_per_s']:.0f} MB/s, "
                    f"RSS {got['rss_before_kb'] / 1024:.0f} MB before, grew "
                    f"{got['growth_mb']:.1f} MB",
                    flush=True,
                )
                if curl is None:
                    continue
                target = tmp / f"curl-{n}.mp4"
                started = time.perf_counter()
                subprocess.run(
                    [curl, "-sS", "--fail", "-o", str(target), url], check=True, timeout=1800
                )
                curl_s = time.perf_counter() - started
                fd = os.open(target, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
                fsync_s = time.perf_counter() - started - curl_s
                curl_bytes = target.stat().st_size
                if n == 0:
                    digest = hashlib.sha256()
                    with target.open("rb") as handle:
                        while chunk := handle.read(1 << 20):
                            digest.update(chunk)
                    if digest.hexdigest() != got["sha256"]:
                        raise RuntimeError("curl and mmgen got different bytes")
                target.unlink()
                results["curl"].append(
                    {
                        "seconds": curl_s,
                        "fsync_seconds": fsync_s,
                        "bytes": curl_bytes,
                        "mb_per_s": curl_bytes / curl_s / 1e6,
                    }
                )
                print(
                    f"curl  {n + 1}: {curl_s:.2f} s, {curl_bytes / curl_s / 1e6:.0f} MB/s "
                    f"(+ {fsync_s:.2f} s fsync)",
                    flush=True,
                )
    best_mmgen = max(results["mmgen"], key=lambda r: r["mb_per_s"])
    best_curl = max(results["curl"], key=lambda r: r["mb_per_s"], default=None)
    growth = max(r["growth_mb"] for r in results["mmgen"])
    if best_mmgen["bytes"] < size:
        print(f"note: the video has {best_mmgen['bytes']} bytes, less than asked ({size})")
    ratio = None
    line = f"best: mmgen {best_mmgen['mb_per_s']:.0f} MB/s"
    if best_curl is not None:
        ratio = best_curl["mb_per_s"] / best_mmgen["mb_per_s"]
        line += f", curl {best_curl['mb_per_s']:.0f} MB/s (curl/mmgen {ratio:.2f})"
    print(f"{line}; RSS growth {growth:.1f} MB (target <= {TARGET_RSS_GROWTH_MB:g})")
    emit(
        {
            "bench": "download",
            "bytes": best_mmgen["bytes"],
            "mmgen_mb_per_s": round(best_mmgen["mb_per_s"], 1),
            "mmgen_seconds": [round(r["seconds"], 3) for r in results["mmgen"]],
            "curl_mb_per_s": round(best_curl["mb_per_s"], 1) if best_curl else None,
            "curl_seconds": [round(r["seconds"], 3) for r in results["curl"]],
            "curl_fsync_seconds": [round(r["fsync_seconds"], 3) for r in results["curl"]],
            "curl_over_mmgen": round(ratio, 3) if ratio else None,
            "rss_growth_mb": round(growth, 1),
            "target_rss_growth_mb": TARGET_RSS_GROWTH_MB,
            "met": growth <= TARGET_RSS_GROWTH_MB,
        }
    )


if __name__ == "__main__":
    main()
