"""A large video uploaded to an object store: memory of the uploading process (issue 19).

Starts moto's S3 server on loopback (in this process), writes a ``--megabytes`` file, and in a
child process uploads it the way ``mmgen run --out s3://...`` does
(:meth:`mmgen.state.store.ObjectStore.upload`: multipart, streamed from the file). The child
reports its resident memory before the upload and its peak (``VmHWM``) after it; the growth is
the figure. Target: <= 64 MB for 1 GiB.

    python bench/upload.py [--megabytes 1024]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time

from _harness import child_env, emit, install_sigterm_exit, workdir

CHILD = """
import json, sys, time
from pathlib import Path
from mmgen.state.store import open_store

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024

store = open_store(sys.argv[1])
store.head("warm-up")  # the client and its connection pool exist before measuring
before = status("VmRSS")
started = time.perf_counter()
store.upload(Path(sys.argv[2]), "big.mp4")
wall = time.perf_counter() - started
print(json.dumps({"rss_before_mb": before, "peak_mb": status("VmHWM"), "wall_s": wall}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--megabytes", type=int, default=1024)
    args = parser.parse_args()
    install_sigterm_exit()
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        env = child_env(
            AWS_ENDPOINT_URL=endpoint,
            AWS_ACCESS_KEY_ID="bench",
            AWS_SECRET_ACCESS_KEY="bench-secret",
            AWS_REGION="us-east-1",
        )
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench-secret",
        )
        s3.create_bucket(Bucket="mmgen-upload")
        with workdir("mmgen-bench-upload-") as work:
            video = work / "big.mp4"
            block = os.urandom(1 << 20)
            with video.open("wb") as out:
                for _ in range(args.megabytes):
                    out.write(block)
            started = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-c", CHILD, "s3://mmgen-upload/team", str(video)],
                env=env,
                capture_output=True,
                text=True,
                timeout=1800,
                check=False,
            )
            if done.returncode != 0:
                raise SystemExit(f"upload failed: {done.stderr[-2000:]}")
            figures = json.loads(done.stdout.strip().splitlines()[-1])
            size = s3.head_object(Bucket="mmgen-upload", Key="team/big.mp4")["ContentLength"]
            print(f"uploaded {size} bytes in {time.perf_counter() - started:.1f} s: {figures}")
    finally:
        server.stop()
    growth = figures["peak_mb"] - figures["rss_before_mb"]
    emit(
        {
            "bench": "upload",
            "megabytes": args.megabytes,
            "uploaded_bytes": size,
            "rss_growth_mb": round(growth, 1),
            "wall_s": round(figures["wall_s"], 2),
            "met": size == args.megabytes << 20 and growth <= 64,
        }
    )


if __name__ == "__main__":
    main()
