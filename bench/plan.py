"""`mmgen plan` of many finished jobs: a local out dir, and an object store (moto's S3 server).

Issue 19: plan must cost the same whatever the videos weigh. Builds the state a finished run
leaves (records, every version's video, ``NAME.mp4``), then times ``mmgen plan JOBS --out OUT
--format json`` as a child process (its default options; the wall time includes starting
Python and loading the job files, measured alone as ``load_s``):

- local, with ``--video-bytes`` videos: the first plan after the videos arrived without
  fingerprints (e.g. copied in: it hashes each once), the steady plan (``plan_s``, the target),
  and ``--verify`` (every byte hashed: what every plan cost before this issue);
- store: the same records and videos (``--store-video-bytes`` each: a listing's cost does not
  depend on them) in a bucket of moto's server on loopback; the requests are counted by a
  small proxy in front of it, in a second, separately timed plan.

    python bench/plan.py [--jobs 10000] [--video-bytes 1048576] [--store-video-bytes 1024]

Targets: local <= 2 s; store <= 5 s and <= 50 requests.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import http.client
import json
import logging
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from _harness import (
    child_env,
    emit,
    install_sigterm_exit,
    mmgen_command,
    run_child,
    workdir,
    write_jobs,
)


def finished_state(jobs_file: Path, video_bytes: int) -> tuple[bytes, dict[str, bytes]]:
    """The records (``records.jsonl``) and the videos a run of every job leaves: each job's
    version file ``NAME.<hash8>.mp4`` (distinct bytes) under its key."""
    from mmgen.jobfile.spec import load_jobs
    from mmgen.state.journal import journal_bytes
    from mmgen.state.planning import version_path
    from mmgen.state.records import Record, utc_now

    records, videos = [], {}
    block = os.urandom(video_bytes)
    for n, job in enumerate(load_jobs([jobs_file])):
        video = n.to_bytes(8, "big") + block[8:]
        path = version_path(job.output, job.spec_hash)
        videos[path] = video
        now = utc_now()
        records.append(
            Record(
                job=job.name,
                spec=job.file,
                spec_hash=job.spec_hash,
                state="success",
                task_id=f"task-{n}",
                file_id=f"file-{n}",
                video=path,
                sha256=hashlib.sha256(video).hexdigest(),
                bytes=len(video),
                submitted_at=now,
                finished_at=now,
                source_hash=job.source_hash,
            )
        )
    return journal_bytes(records), videos


def timed_plan(jobs_file: Path, out: str, work: Path, env: dict[str, str], *extra: str) -> float:
    args = mmgen_command("plan", str(jobs_file), "--out", out, "--format", "json", *extra)
    stdout = work / "plan.json"
    run = run_child(args, stderr_path=work / "plan.err", cap=600, env=env, stdout_path=stdout)
    if run.exit_code != 0:
        raise SystemExit(f"plan failed ({run.exit_code}): {run.stderr_lines()[-3:]}")
    actions = {item["action"] for item in json.loads(stdout.read_text())}
    if actions != {"skip"}:
        raise SystemExit(f"plan did not skip every finished job: {actions}")
    return run.wall


def load_time(jobs_file: Path, work: Path) -> float:
    """Starting Python and loading the job files alone (``mmgen validate``)."""
    args = mmgen_command("-q", "validate", str(jobs_file))
    return run_child(args, stderr_path=work / "validate.err", cap=600).wall


def bench_local(
    jobs_file: Path, work: Path, records: bytes, videos: dict[str, bytes]
) -> dict[str, Any]:
    out = work / "local"
    out.mkdir()
    (out / "records.jsonl").write_bytes(records)
    for path, video in videos.items():
        (out / path).write_bytes(video)
        current = out / (path.split(".")[0] + ".mp4")
        os.link(out / path, current)
    env = child_env()
    first = timed_plan(jobs_file, str(out), work, env)  # learns each video's fingerprint
    steady = min(timed_plan(jobs_file, str(out), work, env) for _ in range(3))
    verify = timed_plan(jobs_file, str(out), work, env, "--verify")
    return {"plan_first_s": first, "plan_s": steady, "plan_verify_s": verify}


class _Counting(BaseHTTPRequestHandler):
    """Forwards to the S3 server and counts the requests."""

    upstream = ""
    count = 0
    lock = threading.Lock()

    def _forward(self) -> None:
        with self.lock:
            type(self).count += 1
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        target = urlsplit(self.upstream)
        conn = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port)
        conn.request(self.command, self.path, body=body, headers=dict(self.headers.items()))
        answer = conn.getresponse()
        data = answer.read()
        self.send_response(answer.status)
        for key, value in answer.getheaders():
            if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        conn.close()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

    def log_message(self, format: str, *args: Any) -> None:
        pass


def bench_store(
    jobs_file: Path, work: Path, records: bytes, videos: dict[str, bytes], size: int
) -> dict[str, Any]:
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server logs each request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        creds = {
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench-secret",
            "AWS_REGION": "us-east-1",
        }
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **_boto(creds))
        s3.create_bucket(Bucket="mmgen-bench")
        s3.put_object(Bucket="mmgen-bench", Key="team/records.jsonl", Body=records)

        def upload(item: tuple[str, bytes]) -> None:
            path, video = item
            body = video[:size]
            s3.put_object(Bucket="mmgen-bench", Key=f"team/{path}", Body=body)
            current = path.split(".")[0] + ".mp4"
            s3.copy_object(
                Bucket="mmgen-bench",
                Key=f"team/{current}",
                CopySource={"Bucket": "mmgen-bench", "Key": f"team/{path}"},
            )

        started = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(upload, videos.items()))
        print(f"store: {2 * len(videos)} objects uploaded in {time.perf_counter() - started:.1f} s")
        # the records say how big each video is: the bench's store copies are smaller
        sizes = _store_records(records, size)
        s3.put_object(Bucket="mmgen-bench", Key="team/records.jsonl", Body=sizes)
        env = child_env(AWS_ENDPOINT_URL=endpoint, **creds)
        url = "s3://mmgen-bench/team"
        plan = min(timed_plan(jobs_file, url, work, env) for _ in range(3))
        handler = type("Counting", (_Counting,), {"upstream": endpoint, "count": 0})
        proxy = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=proxy.serve_forever, daemon=True).start()
        try:
            proxied = dict(env, AWS_ENDPOINT_URL=f"http://127.0.0.1:{proxy.server_address[1]}")
            timed_plan(jobs_file, url, work, proxied)
            requests = handler.count
        finally:
            proxy.shutdown()
            proxy.server_close()
        return {"plan_s": plan, "requests": requests, "objects": 2 * len(videos) + 1}
    finally:
        server.stop()


def _boto(creds: dict[str, str]) -> dict[str, str]:
    return {
        "aws_access_key_id": creds["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": creds["AWS_SECRET_ACCESS_KEY"],
    }


def _store_records(records: bytes, size: int) -> bytes:
    lines = []
    for line in records.decode().splitlines():
        data = json.loads(line)
        data["bytes"] = min(data["bytes"], size)
        lines.append(json.dumps(data, separators=(",", ":")))
    return ("\n".join(lines) + "\n").encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--video-bytes", type=int, default=1 << 20)
    parser.add_argument("--store-video-bytes", type=int, default=1024)
    parser.add_argument("--skip-store", action="store_true", help="Only the local out dir.")
    parser.add_argument("--keep", action="store_true", help="Keep the work folder.")
    args = parser.parse_args()
    install_sigterm_exit()
    with workdir("mmgen-bench-plan-", keep=args.keep) as work:
        jobs_file = write_jobs(
            work / "specs" / "jobs.yaml", [f"Scene {n}." for n in range(args.jobs)]
        )
        started = time.perf_counter()
        records, videos = finished_state(jobs_file, args.video_bytes)
        print(f"state of {args.jobs} finished jobs built in {time.perf_counter() - started:.1f} s")
        load = load_time(jobs_file, work)
        local = bench_local(jobs_file, work, records, videos)
        print(f"local: {local}")
        store = None
        if not args.skip_store:
            store = bench_store(jobs_file, work, records, videos, args.store_video_bytes)
            print(f"store: {store}")
    met = local["plan_s"] <= 2.0 and (
        store is None or (store["plan_s"] <= 5.0 and store["requests"] <= 50)
    )
    emit(
        {
            "bench": "plan",
            "jobs": args.jobs,
            "video_bytes": args.video_bytes,
            "load_s": round(load, 3),
            "local": {k: round(v, 3) for k, v in local.items()},
            "store": store and {k: round(v, 3) for k, v in store.items()},
            "met": met,
        }
    )


if __name__ == "__main__":
    main()
