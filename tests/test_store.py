"""The out dir in an object store (moto's S3 server on loopback) and shared by runners: the
layout, claims, the conditional-write probe, secrets kept out of messages, and 4 runners on
the same jobs paying for each job once (a bucket, and a local folder)."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from click.testing import CliRunner

from mmgen.cli import main
from mock_server import MockConfig
from tests.conftest import S3_SECRET

KEY = "sk-store-test-key"
FAST = ["--poll-interval", "0.2", "--timeout", "60", "--rpm", "0"]


def cli(args: list[str], env: dict[str, str | None] | None = None) -> Any:
    result = CliRunner().invoke(
        main, args, env={"MINIMAX_API_KEY": KEY, "MINIMAX_BASE_URL": None, **(env or {})}
    )
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def write_jobs(folder: Path, count: int, prefix: str = "job") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        "defaults:",
        "  model: S2V-01",
        "  subject_reference: [{type: character, image: [https://example.org/face.jpg]}]",
        "jobs:",
    ]
    for n in range(count):
        lines += [f"  - name: {prefix}{n}", f"    prompt: Scene number {n}."]
    (folder / "jobs.yaml").write_text("\n".join(lines) + "\n")
    return folder


def s3_objects(url: str) -> dict[str, bytes]:
    """Every object under an ``s3://bucket/prefix`` out dir, read with boto3 (as a user would)."""
    parts = urlsplit(url)
    s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    prefix = parts.path.strip("/") + "/"
    found = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=parts.netloc, Prefix=prefix):
        for item in page.get("Contents", []):
            body = s3.get_object(Bucket=parts.netloc, Key=item["Key"])["Body"].read()
            found[item["Key"][len(prefix) :]] = body
    return found


def status(out: str) -> dict[str, dict[str, Any]]:
    result = cli(["status", "--out", out, "--format", "json"])
    assert result.exit_code == 0, result.output
    return {r["job"]: r for r in json.loads(result.stdout)}


# --- one runner against a bucket ---------------------------------------------------------------


def test_run_plan_status_against_a_bucket(start_mock: Any, tmp_path: Path, bucket: str) -> None:
    mock = start_mock(MockConfig(generation_seconds=0.2))
    specs = write_jobs(tmp_path / "specs", 3)
    first = cli(["run", str(specs), "--base-url", mock.base_url, "--out", bucket, *FAST])
    assert first.exit_code == 0, first.output
    objects = s3_objects(bucket)
    records = status(bucket)
    assert {r["state"] for r in records.values()} == {"success"}
    for name, record in records.items():  # each version once, the current copy beside it
        assert hashlib.sha256(objects[record["video"]]).hexdigest() == record["sha256"]
        assert objects[f"{name}.mp4"] == objects[record["video"]]
        assert f"claims/{name}/{record['spec_hash']}.json" in objects
    assert "records.jsonl" in objects and "index.html" in objects
    assert not [key for key in objects if key.startswith("records.d/")]  # merged at the end
    assert b'href="job0.' in objects["index.html"]  # relative links
    assert not list(tmp_path.glob("mmgen-out"))  # nothing local

    plan = cli(
        ["plan", str(specs), "--out", bucket, "--format", "json", "--base-url", mock.base_url]
    )
    assert {item["action"] for item in json.loads(plan.stdout)} == {"skip"}
    again = cli(["run", str(specs), "--base-url", mock.base_url, "--out", bucket, *FAST])
    assert again.exit_code == 0, again.output
    assert mock.stats()["created"] == 3 and mock.stats()["downloads"] == 3

    claims = cli(["claims", "--out", bucket, "--format", "json"])
    assert json.loads(claims.stdout) == []  # done versions hold no claim worth showing


def test_mmgen_out_names_the_store(start_mock: Any, tmp_path: Path, bucket: str) -> None:
    mock = start_mock(MockConfig(generation_seconds=0.2))
    specs = write_jobs(tmp_path / "specs", 1)
    result = cli(["run", str(specs), "--base-url", mock.base_url, *FAST], env={"MMGEN_OUT": bucket})
    assert result.exit_code == 0, result.output
    assert status(bucket)["job0"]["state"] == "success"


class _IgnoringPreconditions(BaseHTTPRequestHandler):
    """A proxy in front of the S3 server that drops If-None-Match / If-Match: a store that
    silently accepts every write, as some S3-compatible services do."""

    upstream = ""

    def _forward(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {
            k: v for k, v in self.headers.items() if k.lower() not in ("if-none-match", "if-match")
        }
        target = urlsplit(self.upstream)
        conn = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port, timeout=10)
        conn.request(self.command, self.path, body=body, headers=headers)
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


def test_a_store_ignoring_conditional_writes_is_refused(
    start_mock: Any, tmp_path: Path, bucket: str, moto_endpoint: str, monkeypatch: Any
) -> None:
    handler = type("Handler", (_IgnoringPreconditions,), {"upstream": moto_endpoint})
    proxy = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{proxy.server_address[1]}")
        mock = start_mock(MockConfig(generation_seconds=0.2))
        specs = write_jobs(tmp_path / "specs", 2)
        result = cli(["run", str(specs), "--base-url", mock.base_url, "--out", bucket, *FAST])
    finally:
        proxy.shutdown()
        proxy.server_close()
        monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    assert result.exit_code == 2, result.output
    assert "ignores conditional writes" in result.stderr
    assert "Traceback" not in result.output
    assert mock.stats()["created"] == 0  # refused before anything was submitted
    assert "records.jsonl" not in s3_objects(bucket)


def test_store_errors_never_show_credentials(tmp_path: Path, bucket: str, monkeypatch: Any) -> None:
    specs = write_jobs(tmp_path / "specs", 1)
    missing = "s3://no-such-bucket-here/x"
    for args in (["status", "--out", missing], ["plan", str(specs), "--out", missing]):
        result = cli(args)
        assert result.exit_code == 2, result.output
        assert "no-such-bucket-here" in result.stderr and "Traceback" not in result.output
        assert S3_SECRET not in result.output and "test-access-key" not in result.output
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    result = cli(["run", str(specs), "--out", bucket, "--mock", *FAST])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert S3_SECRET not in result.output and "test-access-key" not in result.output


# --- claims ----------------------------------------------------------------------------------


def _claim(out: str, job: str, spec_hash: str, **fields: Any) -> None:
    from mmgen.state.claims import claim_key
    from mmgen.state.store import open_store

    data = {
        "job": job,
        "spec_hash": spec_hash,
        "run_id": "0123abcd",
        "host": "ci-runner-7",
        "pid": 4242,
        "claimed_at": "2026-12-01T10:00:00.000Z",
        **fields,
    }
    assert open_store(out).create(claim_key(job, spec_hash), json.dumps(data).encode())


def _hashes(specs: Path, out: str) -> dict[str, str]:
    plan = cli(["plan", str(specs), "--out", out, "--format", "json"])
    return {item["job"]: item["spec_hash"] for item in json.loads(plan.stdout)}


@pytest.mark.parametrize("where", ["bucket", "folder"])
def test_a_claimed_job_is_left_to_its_holder_then_unlocked(
    start_mock: Any, tmp_path: Path, bucket: str, where: str
) -> None:
    out = bucket if where == "bucket" else str(tmp_path / "out")
    mock = start_mock(MockConfig(generation_seconds=0.2))
    specs = write_jobs(tmp_path / "specs", 2)
    hashes = _hashes(specs, out)
    _claim(out, "job1", hashes["job1"])  # another machine's run, creating job1 right now

    result = cli(["run", str(specs), "--base-url", mock.base_url, "--out", out, *FAST])
    assert result.exit_code == 75, result.output  # left to the other run, nothing failed
    assert "claimed by run 0123abcd (pid 4242 on ci-runner-7)" in result.stdout
    assert mock.stats()["created"] == 1  # job0 only

    listed = cli(["claims", "--out", out])
    assert "job1" in listed.stdout and "ci-runner-7" in listed.stdout
    unlocked = cli(["unlock", "job1", "--out", out])
    assert unlocked.exit_code == 0, unlocked.output
    assert "claimed by run 0123abcd" in unlocked.stderr
    assert json.loads(cli(["claims", "--out", out, "--format", "json"]).stdout) == []

    done = cli(["run", str(specs), "--base-url", mock.base_url, "--out", out, *FAST])
    assert done.exit_code == 0, done.output
    assert mock.stats()["created"] == 2


def test_a_claim_with_a_task_id_is_followed_not_created(
    start_mock: Any, tmp_path: Path, bucket: str
) -> None:
    mock = start_mock(MockConfig(generation_seconds=0.2))
    specs = write_jobs(tmp_path / "specs", 1)
    hashes = _hashes(specs, bucket)
    other = write_jobs(tmp_path / "other", 1)  # the same job, created by "another run"
    body = {
        "model": "S2V-01",
        "prompt": "Scene number 0.",
        "subject_reference": [{"type": "character", "image": ["https://example.org/face.jpg"]}],
    }
    import httpx

    created = httpx.post(
        f"{mock.base_url}/v1/video_generation",
        json=body,
        headers={"Authorization": f"Bearer {KEY}"},
    ).json()
    _claim(bucket, "job0", hashes["job0"], task_id=created["task_id"])
    assert other.exists()
    result = cli(["run", str(specs), "--base-url", mock.base_url, "--out", bucket, *FAST])
    assert result.exit_code == 0, result.output
    assert mock.stats()["created"] == 1  # only the other run's
    assert status(bucket)["job0"]["task_id"] == created["task_id"]


# --- many runners at once --------------------------------------------------------------------


def start_run(specs: Path, out: str, base_url: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINIMAX_")}
    env["MINIMAX_API_KEY"] = KEY
    args = ["run", str(specs), "--out", out, "--base-url", base_url, "--format", "json"]
    return subprocess.Popen(
        [sys.executable, "-m", "mmgen", *args, *FAST],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def read_video(out: str, key: str) -> bytes:
    if out.startswith("s3://"):
        return s3_objects(out)[key]
    return (Path(out) / key).read_bytes()


@pytest.mark.slow
@pytest.mark.parametrize("where", ["bucket", "folder"])
def test_four_runners_on_the_same_jobs_pay_once_per_job(
    start_mock: Any, tmp_path: Path, bucket: str, where: str
) -> None:
    jobs = 40
    out = bucket if where == "bucket" else str(tmp_path / "out")
    mock = start_mock(MockConfig(generation_seconds=0.5, seed=3))
    specs = write_jobs(tmp_path / "specs", jobs)
    runners = [start_run(specs, out, mock.base_url) for _ in range(4)]
    codes, created_by = [], []
    for runner in runners:
        stdout, stderr = runner.communicate(timeout=120)
        assert b"Traceback" not in stderr, stderr.decode()
        codes.append(runner.returncode)
        assert runner.returncode in (0, 75), stderr.decode()
        outcomes = json.loads(stdout)
        created_by.append(sum(o["ok"] and o["action"] == "submit" for o in outcomes))
    assert set(codes) <= {0, 75}, codes  # done, or some jobs left to another runner
    assert mock.stats()["created"] == jobs  # every job created exactly once
    assert sum(created_by) == jobs
    assert sum(1 for n in created_by if n) >= 2, created_by  # they worked side by side
    records = status(out)
    assert len(records) == jobs
    assert {r["state"] for r in records.values()} == {"success"}
    assert len({r["task_id"] for r in records.values()}) == jobs
    objects = s3_objects(out) if where == "bucket" else None
    for record in records.values():
        video = objects[record["video"]] if objects else read_video(out, record["video"])
        assert hashlib.sha256(video).hexdigest() == record["sha256"]

    last = cli(["run", str(specs), "--base-url", mock.base_url, "--out", out, *FAST])
    assert last.exit_code == 0 and mock.stats()["created"] == jobs


@pytest.mark.slow
def test_a_killed_runner_leaves_no_duplicate_task(
    start_mock: Any, tmp_path: Path, bucket: str
) -> None:
    jobs = 12
    mock = start_mock(MockConfig(generation_seconds=1.0, seed=5))
    specs = write_jobs(tmp_path / "specs", jobs)
    runner = start_run(specs, bucket, mock.base_url)
    deadline = time.monotonic() + 30
    while mock.stats()["created"] < jobs // 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(runner.pid, signal.SIGKILL)
    runner.communicate(timeout=10)
    result = cli(["run", str(specs), "--base-url", mock.base_url, "--out", bucket, *FAST])
    records = status(bucket)
    created = mock.stats()["created"]
    states = [r["state"] for r in records.values()]
    # a create cut off mid-flight is unknown (its claim's runner is gone), never sent again
    assert len(records) == jobs and set(states) <= {"success", "unknown"}, result.output
    succeeded = [r["task_id"] for r in records.values() if r["state"] == "success"]
    assert len(set(succeeded)) == len(succeeded)
    assert len(succeeded) <= created <= jobs
    assert result.exit_code == (0 if len(succeeded) == jobs else 1), result.output


# --- plan cost independent of video bytes ---------------------------------------------------


def test_plan_trusts_fingerprints_and_verify_hashes_again(start_mock: Any, tmp_path: Path) -> None:
    mock = start_mock(MockConfig(generation_seconds=0.2))
    specs, out = write_jobs(tmp_path / "specs", 1), tmp_path / "out"
    assert (
        cli(["run", str(specs), "--base-url", mock.base_url, "--out", str(out), *FAST]).exit_code
        == 0
    )
    video = out / status(str(out))["job0"]["video"]
    stat = video.stat()
    (out / "job0.mp4").unlink()  # NAME.mp4 is a link to it: alter the version file alone
    data = bytearray(video.read_bytes())
    data[-1] ^= 0xFF  # altered in place, same size, mtime put back: only --verify sees it
    video.write_bytes(bytes(data))
    os.utime(video, ns=(stat.st_atime_ns, stat.st_mtime_ns))

    def actions(*extra: str) -> dict[str, str]:
        args = ["--out", str(out), "--format", "json", "--base-url", mock.base_url, *extra]
        plan = cli(["plan", str(specs), *args])
        return {item["job"]: item["action"] for item in json.loads(plan.stdout)}

    assert actions() == {"job0": "skip"}  # one stat, no read
    assert actions("--verify") == {"job0": "resume"}
    with video.open("ab") as grown:  # a size that differs is seen without --verify
        grown.write(b"x")
    assert actions() == {"job0": "resume"}


# --- previews --------------------------------------------------------------------------------


def _exists(out: str, key: str) -> bool:
    if out.startswith("s3://"):
        return key in s3_objects(out)
    return (Path(out) / key).exists()


@pytest.mark.parametrize("where", ["bucket", "folder"])
def test_a_preview_is_adopted_by_the_next_run_without_paying_again(
    start_mock: Any, tmp_path: Path, bucket: str, where: str
) -> None:
    out = bucket if where == "bucket" else str(tmp_path / "out")
    mock = start_mock(MockConfig(generation_seconds=0.2))
    specs = write_jobs(tmp_path / "specs", 2)
    base = ["--base-url", mock.base_url, "--out", out, *FAST]
    assert cli(["run", str(specs), *base]).exit_code == 0  # v1 of both jobs is current
    v1 = status(out)
    (specs / "jobs.yaml").write_text((specs / "jobs.yaml").read_text().replace("Scene", "Shot"))
    (specs / "new.yaml").write_text(
        "name: fresh\nmodel: S2V-01\nprompt: New.\n"
        "subject_reference: [{type: character, image: [https://example.org/face.jpg]}]\n"
    )

    preview = cli(["run", str(specs), "--preview", *base])
    assert preview.exit_code == 0, preview.output
    assert mock.stats()["created"] == 5 and mock.stats()["downloads"] == 5
    now = status(out)
    assert now["job0"]["spec_hash"] == v1["job0"]["spec_hash"]  # previews are not current
    assert now["fresh"]["preview"] is True  # a new job's only version: shown, marked
    assert not _exists(out, "fresh.mp4")
    assert read_video(out, "job0.mp4") == read_video(out, v1["job0"]["video"])
    # the gallery shows what is current (v1) and marks the previews
    page = read_video(out, "index.html").decode("utf-8")
    card = page[page.index('id="job-job0"') :]
    card = card[: card.index("</article>")]
    assert v1["job0"]["video"] in card.split("<details")[0]  # the card plays v1, not the preview
    assert 'class="mark preview"' in card  # the preview is in the history, marked
    fresh = page[page.index('id="job-fresh"') :]
    assert '<span class="state preview">preview</span>' in fresh[: fresh.index("</article>")]

    merged = cli(["run", str(specs), *base])
    assert merged.exit_code == 0, merged.output
    assert mock.stats()["created"] == 5 and mock.stats()["downloads"] == 5  # adopted: no call
    adopted = status(out)
    assert {r["preview"] for r in adopted.values()} == {False}
    for name, record in adopted.items():
        assert record["spec_hash"] != v1.get(name, {}).get("spec_hash")
        assert read_video(out, f"{name}.mp4") == read_video(out, record["video"])


# --- moving in -------------------------------------------------------------------------------


def test_store_copy_moves_an_out_dir_into_a_bucket_and_back(
    start_mock: Any, tmp_path: Path, bucket: str
) -> None:
    mock = start_mock(MockConfig(generation_seconds=0.2))
    specs, out = write_jobs(tmp_path / "specs", 3), tmp_path / "out"
    assert (
        cli(["run", str(specs), "--base-url", mock.base_url, "--out", str(out), *FAST]).exit_code
        == 0
    )
    records = status(str(out))
    bad = out / records["job2"]["video"]
    (out / "job2.mp4").unlink()
    bad.write_bytes(bad.read_bytes()[:-1] + b"!")  # not what was recorded: never copied

    first = cli(["store", "copy", str(out), bucket])
    assert first.exit_code == 1, first.output
    assert "job2" in first.stderr and "recorded sha256" in first.stderr
    assert "2 videos copied" in first.stderr
    objects = s3_objects(bucket)
    assert records["job2"]["video"] not in objects
    for name in ("job0", "job1"):
        video = objects[records[name]["video"]]
        assert hashlib.sha256(video).hexdigest() == records[name]["sha256"]
        assert objects[f"{name}.mp4"] == video
    assert status(bucket).keys() == records.keys()

    again = cli(["store", "copy", str(out), bucket])  # rerun: what is there is checked, kept
    assert "0 videos copied, 2 already there" in again.stderr

    back = tmp_path / "back"
    assert cli(["store", "copy", bucket, str(back)]).exit_code == 0
    plan = cli(
        ["plan", str(specs), "--out", str(back), "--format", "json", "--base-url", mock.base_url]
    )
    actions = {item["job"]: item["action"] for item in json.loads(plan.stdout)}
    assert actions == {"job0": "skip", "job1": "skip", "job2": "resume"}


def test_a_dead_runners_claim_before_any_record_is_taken_over(
    start_mock: Any, tmp_path: Path
) -> None:
    """A runner that died between its claim and its "submitting" record never sent the create
    (the record is written first): its claim is cleared and the job submitted."""
    import socket

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    out = str(tmp_path / "out")
    mock = start_mock(MockConfig(generation_seconds=0.2))
    specs = write_jobs(tmp_path / "specs", 1)
    _claim(out, "job0", _hashes(specs, out)["job0"], host=socket.gethostname(), pid=gone.pid)
    result = cli(["run", str(specs), "--base-url", mock.base_url, "--out", out, *FAST])
    assert result.exit_code == 0, result.output
    assert mock.stats()["created"] == 1


def test_replace_creates_a_done_version_again_despite_its_claim(
    start_mock: Any, tmp_path: Path
) -> None:
    out = str(tmp_path / "out")
    mock = start_mock(MockConfig(generation_seconds=0.2))
    specs = write_jobs(tmp_path / "specs", 1)
    base = ["--base-url", mock.base_url, "--out", out, *FAST]
    assert cli(["run", str(specs), *base]).exit_code == 0
    again = cli(["run", str(specs), "--replace", "job0", *base])
    assert again.exit_code == 0, again.output
    assert mock.stats()["created"] == 2
