"""The recovery paths of issue 9, each proven against the runner (a fake client typed by the
runner's ApiClient protocol, or the real client on respx): every one fails on the old runner."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from click.testing import CliRunner

from mmgen.api.client import MiniMaxClient, RetryPolicy, TaskStatus
from mmgen.cli import main
from mmgen.errors import (
    AuthError,
    BalanceError,
    CallbackCheckError,
    ConnectFailedError,
    MmgenError,
    api_error,
)
from mmgen.run.runner import (
    DOWNLOAD_ATTEMPTS,
    DOWNLOAD_ROUNDS,
    RETRIEVE_ATTEMPTS,
    RunConfig,
    Runner,
)
from mmgen.state.journal import RecordStore
from mmgen.state.planning import plan, version_path
from tests.fakes import VIDEO, FakeClient, Job
from tests.test_runner_unit import run_jobs


class VersionedClient(FakeClient):
    """Each task's video has its own bytes, so versions can be told apart."""

    async def download(
        self, url, dest: Path, *, progress=None, expected_bytes=None, attempts=None, then=None
    ):
        from mmgen.api.client import Download

        self.downloads += 1
        data = VIDEO + url.encode()
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
        if then is not None:
            then(dest)
        return Download(dest, hashlib.sha256(data).hexdigest(), len(data))


@pytest.mark.anyio
async def test_undoing_an_edit_is_a_local_copy_not_a_task(tmp_path: Path) -> None:
    client = VersionedClient()
    await run_jobs(tmp_path, client, [Job("a", spec_hash="h1aaaaaaa")])
    v1 = (tmp_path / "a.mp4").read_bytes()
    await run_jobs(tmp_path, client, [Job("a", spec_hash="h2bbbbbbb")])
    v2 = (tmp_path / "a.mp4").read_bytes()
    assert v1 != v2 and len(client.created) == 2 and client.downloads == 2
    # each version keeps its own file; the old record still describes an intact video
    assert (tmp_path / version_path("a.mp4", "h1aaaaaaa")).read_bytes() == v1
    store = RecordStore(tmp_path)
    assert store.get("a", "h1aaaaaaa").sha256 == hashlib.sha256(v1).hexdigest()
    assert [r.spec_hash for r in store.current()] == ["h2bbbbbbb"]

    result, items, _ = await run_jobs(tmp_path, client, [Job("a", spec_hash="h1aaaaaaa")])
    assert items[0].action == "skip" and items[0].restore and result.ok
    assert len(client.created) == 2 and client.downloads == 2  # no task, no download
    assert (tmp_path / "a.mp4").read_bytes() == v1
    assert [r.spec_hash for r in RecordStore(tmp_path).current()] == ["h1aaaaaaa"]
    assert len(RecordStore(tmp_path).records()) == 2  # status --all: the history


@pytest.mark.anyio
async def test_a_task_the_api_forgot_ends_failed_and_is_submitted_next_run(tmp_path: Path) -> None:
    client = FakeClient(polls_to_finish=10_000)
    await run_jobs(tmp_path, client, [Job("a")], timeout=0.2)  # left in flight
    assert RecordStore(tmp_path).get("a", "h1").state == "submitted"

    async def forgotten(task_id: str, **_: Any) -> TaskStatus:
        raise api_error(2013, "task not found")

    client.query_task = forgotten  # type: ignore[method-assign]
    result, items, _ = await run_jobs(tmp_path, client, [Job("a")])
    assert items[0].action == "resume"
    record = result.outcomes[0].record
    assert record.state == "failed" and record.error.code == "task_lost"
    assert "no longer knows task 1001" in result.outcomes[0].message
    assert "next run submits the job again" in result.outcomes[0].message
    [again] = plan([Job("a")], RecordStore(tmp_path))
    assert again.action == "submit"


class LimitedClient(FakeClient):
    """Creates wait for a (simulated) rate limiter that lets one request through."""

    def __init__(self) -> None:
        super().__init__(polls_to_finish=10_000)
        self.gate = asyncio.Semaphore(1)
        self.sent = asyncio.Event()

    async def create_task(self, body: dict[str, Any], *, before_send=None, abort=None) -> str:
        await self.gate.acquire()  # the limiter: only the first job ever gets through
        if before_send is not None:
            await before_send()
        task_id = await super().create_task(body)
        self.sent.set()
        return task_id


@pytest.mark.anyio
async def test_jobs_waiting_for_the_rate_limiter_are_not_recorded(tmp_path: Path) -> None:
    client = LimitedClient()
    store = RecordStore(tmp_path)
    jobs = [Job(name) for name in "abcde"]
    with store.lock():
        runner = Runner(client, store, RunConfig(out_dir=tmp_path, concurrency=5))
        task = asyncio.create_task(runner.run(plan(jobs, store)))
        await asyncio.wait_for(client.sent.wait(), 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    records = RecordStore(tmp_path).records()
    assert [(r.job, r.state) for r in records] == [("a", "submitted")]
    assert [i.action for i in plan(jobs, RecordStore(tmp_path))][1:] == ["submit"] * 4


@pytest.mark.parametrize(
    "error",
    [
        AuthError(2049, "invalid api key"),
        AuthError(1004, "not authorized"),
        BalanceError(1008, "insufficient balance"),
        ConnectFailedError("cannot connect to http://127.0.0.1:9"),
    ],
    ids=["2049", "1004", "1008", "unreachable"],
)
@pytest.mark.anyio
async def test_an_account_level_error_stops_all_submitting(
    tmp_path: Path, error: MmgenError
) -> None:
    client = FakeClient()
    attempts: list[str] = []

    async def refused(body: dict[str, Any], *, before_send=None, abort=None) -> str:
        attempts.append(body["prompt"])
        if before_send is not None:
            await before_send()
        raise error

    client.create_task = refused  # type: ignore[method-assign]
    jobs = [Job(f"j{i}", body={"model": "S2V-01", "prompt": f"p{i}"}) for i in range(20)]
    result, _, _ = await run_jobs(tmp_path, client, jobs, concurrency=2)
    assert len(attempts) <= 2  # the ones already in flight; none after the first answer
    assert result.stopped and error.message in result.stopped and result.exit_code == 1
    records = RecordStore(tmp_path).records()
    assert len(records) == len(attempts)  # unsent jobs untouched: no record at all
    assert sum(o.message.startswith("not sent") for o in result.outcomes) == 20 - len(attempts)


@pytest.mark.anyio
async def test_refused_callback_check_is_resent_without_callback_and_polled(
    tmp_path: Path,
) -> None:
    from mmgen.run.listener import CallbackListener

    client = FakeClient(polls_to_finish=2)
    refusals: list[int] = []
    real_create = client.create_task

    async def check(body: dict[str, Any], *, before_send=None, abort=None) -> str:
        if "callback_url" in body:
            refusals.append(1)
            if before_send is not None:
                await before_send()
            raise api_error(2013, "invalid params, fail to check callback url")
        return await real_create(body, before_send=before_send)

    client.create_task = check  # type: ignore[method-assign]
    jobs = [Job(f"j{i}", body={"model": "S2V-01", "prompt": f"p{i}"}) for i in range(6)]
    async with CallbackListener() as listener:
        result, _, _ = await run_jobs(tmp_path, client, jobs, listener=listener, concurrency=1)
    assert result.ok and len(client.created) == 6
    assert all("callback_url" not in body for body in client.created)
    assert len(refusals) == 3  # after 3 refusals callbacks are no longer offered
    assert len(result.warnings) == 1 and "--public-url" in result.warnings[0]

    # --wait callback: an error with a clear message, and the run stops submitting
    client2 = FakeClient()
    client2.create_errors["p0"] = CallbackCheckError(2013, "fail to check callback url")
    async with CallbackListener() as listener:
        result, _, _ = await run_jobs(
            tmp_path / "cb", client2, jobs[:3], listener=listener, wait="callback", concurrency=1
        )
    assert not result.ok and result.stopped and "--public-url" in result.stopped
    assert client2.created == []


@pytest.mark.anyio
async def test_one_video_costs_a_bounded_number_of_requests(tmp_path: Path) -> None:
    """Retries do not stack: a download that always fails costs DOWNLOAD_ROUNDS x
    (RETRIEVE_ATTEMPTS + DOWNLOAD_ATTEMPTS) requests at most (it was ~90)."""
    base = "https://api.test.invalid"
    with respx.mock(assert_all_called=False, using="httpx") as router:
        router.post(f"{base}/v1/video_generation").respond(
            json={"task_id": "t1", "base_resp": {"status_code": 0}}
        )
        router.get(f"{base}/v1/query/video_generation").respond(
            json={
                "task_id": "t1",
                "status": "Success",
                "file_id": "f1",
                "base_resp": {"status_code": 0},
            }
        )
        retrieve = router.get(f"{base}/v1/files/retrieve").mock(
            side_effect=[httpx.Response(500)] * 2
            + [
                httpx.Response(
                    200,
                    json={
                        "file": {"file_id": "f1", "download_url": "https://cdn.invalid/v.mp4"},
                        "base_resp": {"status_code": 0},
                    },
                )
            ]
            * 10
        )
        cdn = router.get("https://cdn.invalid/v.mp4").respond(500)
        slept: list[float] = []

        async def sleep(seconds: float) -> None:
            slept.append(seconds)

        async with MiniMaxClient("k", base, retry=RetryPolicy(jitter=False), sleep=sleep) as client:
            store = RecordStore(tmp_path)
            with store.lock():
                runner = Runner(client, store, RunConfig(out_dir=tmp_path, poll_interval=0.01))
                result = await runner.run(plan([Job("a")], store))
    assert not result.ok
    total = retrieve.call_count + cdn.call_count
    assert total <= DOWNLOAD_ROUNDS * (RETRIEVE_ATTEMPTS + DOWNLOAD_ATTEMPTS) == 24
    assert cdn.call_count == DOWNLOAD_ROUNDS * DOWNLOAD_ATTEMPTS
    record = result.outcomes[0].record
    assert record.state == "submitted" and record.error.code == "download"


def test_status_of_a_missing_out_dir_is_an_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["status", "--out", str(tmp_path / "missing")])
    assert result.exit_code == 2
    assert "no outcome records" in result.output.lower() and "missing" in result.output


def test_a_locked_out_dir_exits_75_not_1(tmp_path: Path) -> None:
    from mmgen.errors import EXIT_LOCKED, LockedError

    assert LockedError("busy").exit_code == EXIT_LOCKED == 75


def test_status_shows_current_records_and_all_shows_history(tmp_path: Path) -> None:
    import json

    from mmgen.state.records import Record

    store = RecordStore(tmp_path)
    with store.lock():
        store.put(
            Record(job="a", spec="s", spec_hash="h1", state="success", task_id="1", updated_at="1")
        )
        store.put(Record(job="a", spec="s", spec_hash="h2", state="failed", updated_at="2"))
        store.put(
            Record(job="b", spec="s", spec_hash="h1", state="success", task_id="1", updated_at="1")
        )
    runner = CliRunner()
    current = json.loads(
        runner.invoke(main, ["status", "--out", str(tmp_path), "--format", "json"]).output
    )
    assert [(r["job"], r["spec_hash"]) for r in current] == [("a", "h2"), ("b", "h1")]
    every = json.loads(
        runner.invoke(main, ["status", "--out", str(tmp_path), "--all", "--format", "json"]).output
    )
    assert len(every) == 3


def test_an_interrupted_rehearsal_resumes_on_the_same_mock_tasks(tmp_path: Path) -> None:
    """`run --mock` stopped mid-wait, then run again: the jobs are resumed on the tasks the
    rehearsal mock kept in OUT/.mock/ (it used to answer "2013 task not found")."""
    import json
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.test_run_crash import journal, write_specs

    specs = write_specs(tmp_path / "specs")
    out = tmp_path / "out"
    config = tmp_path / "mock.yaml"
    config.write_text("generation_seconds: 4\n")
    args = [sys.executable, "-m", "mmgen", "run", "--mock", "--mock-config", str(config)]
    args += [str(specs), "--out", str(out), "--poll-interval", "0.2"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINIMAX_")}
    first = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while sum(r["state"] == "submitted" for r in journal(out)) < 4:
            assert first.poll() is None and time.monotonic() < deadline, first.communicate()
            time.sleep(0.05)
        first.send_signal(signal.SIGTERM)
        assert first.wait(30) == 130
    finally:
        first.kill()
        first.communicate()
    tasks = {r["job"]: r["task_id"] for r in journal(out) if r["task_id"]}
    assert len(tasks) == 4 and (out / ".mock").is_dir()

    second = subprocess.run([*args, "--format", "json"], env=env, capture_output=True, timeout=120)
    assert second.returncode == 0, second.stderr.decode()
    outcomes = json.loads(second.stdout)
    assert {o["action"] for o in outcomes} == {"resume"}
    assert {o["job"]: o["task_id"] for o in outcomes} == tasks  # the same tasks, none new
    assert all(o["state"] == "success" for o in outcomes)


@pytest.mark.anyio
async def test_an_unreachable_server_stops_the_run_without_waiting_for_the_limiter(
    tmp_path: Path,
) -> None:
    """Jobs queued for the RPM limiter (whose sleep here never ends by itself) or between
    tries are withdrawn when the first create gives up on connecting: the run ends at once,
    having spent no RPM slot, with the unsent jobs untouched."""
    from mmgen.api.ratelimit import RateLimiter

    never = asyncio.Event()

    async def forever(seconds: float) -> None:
        await never.wait()

    async def instant(seconds: float) -> None:
        return None

    limiter = RateLimiter(1, sleep=forever)
    base = "https://api.test.invalid"
    with respx.mock(using="httpx") as router:
        route = router.post(f"{base}/v1/video_generation").mock(
            side_effect=httpx.ConnectError("refused")
        )
        async with MiniMaxClient("k", base, rate_limiter=limiter, sleep=instant) as client:
            store = RecordStore(tmp_path)
            jobs = [Job(f"j{i}", body={"model": "S2V-01", "prompt": f"p{i}"}) for i in range(20)]
            with store.lock():
                runner = Runner(client, store, RunConfig(out_dir=tmp_path, concurrency=8))
                result = await asyncio.wait_for(runner.run(plan(jobs, store)), 30)
    assert result.stopped and "cannot connect" in result.stopped
    # refused connections spend no RPM slot, so the jobs in flight (8) take turns; the first
    # to fail 3 times stops everything, and nothing waits for the limiter's minute
    assert 3 <= route.call_count <= 3 * 8
    assert not limiter._stamps  # every slot was refunded
    records = RecordStore(tmp_path).records()
    assert all(r.state == "failed" and r.task_id is None for r in records)
    assert len(records) <= 8  # the 12+ jobs never let through are untouched


def test_plan_tells_a_changed_variable_from_an_edited_job_file(tmp_path: Path) -> None:
    import json

    spec = tmp_path / "specs" / "cat.yaml"
    spec.parent.mkdir()
    spec.write_text(
        "name: cat\nmodel: S2V-01\nprompt: A ${MOOD} cat.\nsubject_reference:\n"
        "  - {type: character, image: [https://example.org/face.jpg]}\n"
    )
    out = tmp_path / "out"
    config = tmp_path / "mock.yaml"
    config.write_text("generation_seconds: 0.2\n")
    runner = CliRunner()
    env = {"MOOD": "calm", "MINIMAX_BASE_URL": None}
    args = ["run", "--mock", "--mock-config", str(config), str(spec), "--out", str(out)]
    assert runner.invoke(main, args, env=env).exit_code == 0

    def plan_of(mood: str) -> dict[str, Any]:
        result = runner.invoke(
            main,
            ["plan", "--mock", str(spec), "--out", str(out), "--format", "json"],
            env={"MOOD": mood},
        )
        assert result.exit_code == 0, result.output
        [item] = json.loads(result.output)
        return dict(item)

    assert plan_of("calm")["action"] == "skip"
    changed = plan_of("wild")
    assert changed["action"] == "changed"
    assert "job file is unchanged" in changed["reason"] and "${MOOD}" in changed["reason"]
    spec.write_text(spec.read_text().replace("A ${MOOD} cat.", "A ${MOOD} dog."))
    edited = plan_of("calm")
    assert (
        edited["action"] == "changed" and edited["reason"] == "job file changed since the last run"
    )
