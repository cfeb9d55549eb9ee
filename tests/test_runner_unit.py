"""Runner and plan logic against an in-memory fake client (no network, no sleeping on time)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from mmgen.api.client import TaskStatus
from mmgen.errors import AmbiguousSubmitError, ContentError, api_error
from mmgen.run.execute import mark_interrupted_submits
from mmgen.run.listener import CallbackListener
from mmgen.run.outcomes import JobEvent
from mmgen.run.runner import ApiClient, RunConfig, Runner
from mmgen.state.journal import RecordStore
from mmgen.state.planning import PlanItem, plan, version_path
from mmgen.state.records import Record
from tests.fakes import VIDEO, FakeClient, Job


def _typed(client: FakeClient) -> ApiClient:
    return client  # mypy checks FakeClient against the runner's ApiClient protocol


def config(tmp_path: Path, **kw: Any) -> RunConfig:
    kw.setdefault("poll_interval", 0.01)
    kw.setdefault("max_poll_interval", 0.02)
    return RunConfig(out_dir=tmp_path, **kw)


async def run_jobs(tmp_path: Path, client: FakeClient, jobs, listener=None, **kw):
    store = RecordStore(tmp_path)
    events: list[JobEvent] = []
    with store.lock():
        mark_interrupted_submits(store)
        items = plan(jobs, store)
        runner = Runner(
            client, store, config(tmp_path, **kw), listener=listener, on_event=events.append
        )
        result = await runner.run(items)
    return result, items, events


@pytest.mark.anyio
async def test_second_run_skips_and_a_changed_job_is_submitted_once(tmp_path: Path) -> None:
    client = FakeClient()
    result, items, _ = await run_jobs(tmp_path, client, [Job("a"), Job("b")])
    assert result.ok and [i.action for i in items] == ["submit", "submit"]
    assert (tmp_path / "a.mp4").read_bytes() == VIDEO
    assert (tmp_path / version_path("a.mp4", "h1")).read_bytes() == VIDEO

    result, items, _ = await run_jobs(tmp_path, client, [Job("a"), Job("b", spec_hash="h2")])
    assert [i.action for i in items] == ["skip", "changed"]
    assert len(client.created) == 3
    store = RecordStore(tmp_path)
    assert store.get("b", "h1") is not None  # the old version's record is kept
    assert store.get("b", "h2").state == "success"


@pytest.mark.anyio
async def test_missing_video_is_downloaded_again_not_regenerated(tmp_path: Path) -> None:
    client = FakeClient()
    await run_jobs(tmp_path, client, [Job("a")])
    version = tmp_path / version_path("a.mp4", "h1")
    version.unlink()
    (tmp_path / "a.mp4").unlink()
    result, items, _ = await run_jobs(tmp_path, client, [Job("a")])
    assert items[0].action == "resume" and "video missing" in items[0].reason
    assert result.ok and len(client.created) == 1 and client.downloads == 2
    (tmp_path / "a.mp4").unlink()
    version.write_bytes(b"corrupt")
    _, items, _ = await run_jobs(tmp_path, client, [Job("a")])
    assert items[0].action == "resume" and "altered" in items[0].reason
    assert (tmp_path / "a.mp4").read_bytes() == VIDEO == version.read_bytes()


@pytest.mark.anyio
async def test_refused_create_fails_that_job_only(tmp_path: Path) -> None:
    client = FakeClient()
    client.create_errors["bad"] = api_error(1026, "sensitive")
    jobs = [Job("a"), Job("b", body={"model": "S2V-01", "prompt": "bad"}), Job("c")]
    result, _, _ = await run_jobs(tmp_path, client, jobs)
    assert [o.ok for o in result.outcomes] == [True, False, True]
    failed = result.outcomes[1].record
    assert failed.state == "failed" and failed.error.code == 1026
    assert failed.task_id is None
    assert result.exit_code == 1
    # a failed job is retried by the next run
    assert plan(jobs, RecordStore(tmp_path))[1].action == "submit"


@pytest.mark.anyio
async def test_task_fail_is_a_failed_record(tmp_path: Path) -> None:
    result, _, _ = await run_jobs(
        tmp_path, FakeClient(), [Job("x", body={"model": "S2V-01", "prompt": "fail"})]
    )
    record = result.outcomes[0].record
    assert record.state == "failed" and record.error.code == "task_failed"
    assert record.task_id == "1001"


@pytest.mark.anyio
async def test_content_error_while_waiting_fails_the_job(tmp_path: Path) -> None:
    client = FakeClient()

    async def query(task_id: str, **_: Any) -> TaskStatus:
        raise ContentError(1027, "output sensitive")

    client.query_task = query  # type: ignore[method-assign]
    result, _, _ = await run_jobs(tmp_path, client, [Job("a")])
    assert result.outcomes[0].record.state == "failed"
    assert result.outcomes[0].record.error.code == 1027


@pytest.mark.anyio
async def test_ambiguous_submit_is_unknown_and_not_resubmitted(tmp_path: Path) -> None:
    client = FakeClient()
    client.create_errors["p"] = AmbiguousSubmitError("connection reset after sending")
    result, _, _ = await run_jobs(tmp_path, client, [Job("a")])
    assert result.outcomes[0].record.state == "unknown"
    client.create_errors.clear()
    result, items, _ = await run_jobs(tmp_path, client, [Job("a")])
    assert items[0].action == "unknown" and not result.ok
    assert client.created == []
    assert plan([Job("a")], RecordStore(tmp_path), resubmit_unknown=True)[0].action == "submit"


@pytest.mark.anyio
async def test_timeout_keeps_the_task_for_the_next_run(tmp_path: Path) -> None:
    client = FakeClient(polls_to_finish=10_000)
    result, _, _ = await run_jobs(tmp_path, client, [Job("a")], timeout=0.2)
    record = result.outcomes[0].record
    assert not result.ok and record.state == "submitted" and record.error.code == "timeout"
    client.polls_to_finish = 1
    result, items, _ = await run_jobs(tmp_path, client, [Job("a")])
    assert items[0].action == "resume" and result.ok
    assert len(client.created) == 1


@pytest.mark.anyio
async def test_interrupted_create_still_records_the_task_id(tmp_path: Path) -> None:
    client = FakeClient()
    client.create_delay = 0.3
    store = RecordStore(tmp_path)
    with store.lock():
        runner = Runner(client, store, config(tmp_path))
        task = asyncio.create_task(runner.run(plan([Job("a")], store)))
        await asyncio.wait_for(client.create_started.wait(), 10)  # the create is in flight
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    [record] = RecordStore(tmp_path).records()
    assert record.state == "submitted" and record.task_id == "1001"


def test_stale_submitting_becomes_unknown(tmp_path: Path) -> None:
    store = RecordStore(tmp_path)
    with store.lock():
        store.put(Record(job="a", spec="s", spec_hash="h1", state="submitting"))
        [changed] = mark_interrupted_submits(store)
    assert changed.state == "unknown" and changed.error.code == "interrupted"
    [item] = plan([Job("a")], RecordStore(tmp_path))
    assert isinstance(item, PlanItem) and item.action == "unknown"


@pytest.mark.anyio
async def test_forged_success_push_is_not_believed(tmp_path: Path) -> None:
    client = FakeClient(polls_to_finish=10_000)  # the task stays Processing until we say so
    async with CallbackListener() as listener, httpx.AsyncClient() as http:
        run = asyncio.create_task(
            run_jobs(tmp_path, client, [Job("a")], listener=listener, wait="callback")
        )
        for _ in range(1000):
            if client.created:
                break
            await asyncio.sleep(0.01)
        task_id = "1001"
        url = client.created[0]["callback_url"]  # the job's own path under the run's
        assert url.startswith(listener.callback_url + "/")
        forged = {"task_id": task_id, "status": "success", "file_id": "evil"}
        assert (await http.post(url, json=forged)).status_code == 200
        for _ in range(1000):  # one query confirms the push (a fresh task is not polled)
            if client.queries.get(task_id, 0) >= 1:
                break
            await asyncio.sleep(0.01)
        assert client.queries[task_id] == 1
        assert not run.done()  # the confirming query said Processing: the push was ignored
        client.polls_to_finish = 0  # now it really finishes, and MiniMax pushes it
        real = {"task_id": task_id, "status": "success", "file_id": "f" + task_id}
        assert (await http.post(url, json=real)).status_code == 200
        result, _, _ = await asyncio.wait_for(run, 5)
    record = result.outcomes[0].record
    assert record.state == "success" and record.file_id == "f" + task_id


@pytest.mark.anyio
async def test_job_with_its_own_callback_url_is_polled_and_kept(tmp_path: Path) -> None:
    client = FakeClient(polls_to_finish=3)
    own = {"model": "S2V-01", "prompt": "p", "callback_url": "https://hooks.invalid/h"}
    async with CallbackListener() as listener:
        result, _, _ = await run_jobs(
            tmp_path, client, [Job("a", body=own)], listener=listener, wait="callback"
        )
    assert result.ok
    assert client.created[0]["callback_url"] == "https://hooks.invalid/h"


@pytest.mark.anyio
async def test_changed_output_moves_the_video_without_regenerating(tmp_path: Path) -> None:
    client = FakeClient()
    await run_jobs(tmp_path, client, [Job("a")])
    moved = Job("a", output="videos/a-final.mp4")  # same request body, same spec hash
    result, items, _ = await run_jobs(tmp_path, client, [moved])
    assert items[0].action == "skip" and result.ok  # a local copy, no download
    assert len(client.created) == 1 and client.downloads == 1
    assert (tmp_path / "videos/a-final.mp4").read_bytes() == VIDEO
    assert result.outcomes[0].record.video == version_path("videos/a-final.mp4", "h1")


@pytest.mark.anyio
async def test_transient_query_failures_do_not_end_the_wait(tmp_path: Path) -> None:
    from mmgen.errors import AuthError, TransportError

    client = FakeClient(polls_to_finish=4)
    real_query = client.query_task
    failures = iter([TransportError("connection reset"), api_error(1002, "rate limit")])

    async def flaky(task_id: str, **_: Any) -> TaskStatus:
        error = next(failures, None)
        if error is not None:
            raise error
        return await real_query(task_id)

    client.query_task = flaky  # type: ignore[method-assign]
    result, _, _ = await run_jobs(tmp_path, client, [Job("a")])
    assert result.ok and client.queries["1001"] == 4

    async def refused(task_id: str, **_: Any) -> TaskStatus:
        raise AuthError(1004, "not authorized")

    client.query_task = refused  # type: ignore[method-assign]
    result, _, _ = await run_jobs(tmp_path, client, [Job("b")])
    record = result.outcomes[0].record
    assert not result.ok and record.state == "submitted" and record.error.code == 1004


@pytest.mark.anyio
async def test_a_push_before_the_creates_answer_is_delivered(tmp_path: Path) -> None:
    """MiniMax may push a status before the create's answer is read: the push names its job by
    its path, so it is queued for the job (not refused) and the job finishes at once."""
    client = FakeClient(polls_to_finish=0)
    pushed: list[int] = []
    async with CallbackListener() as listener, httpx.AsyncClient() as http:
        real_create = client.create_task

        async def create_then_push_first(body: dict[str, Any], **kw: Any) -> str:
            task_id = await real_create(body, **kw)
            push = {"task_id": task_id, "status": "success", "file_id": "f" + task_id}
            pushed.append((await http.post(body["callback_url"], json=push)).status_code)
            return task_id

        client.create_task = create_then_push_first  # type: ignore[method-assign]
        result, _, _ = await asyncio.wait_for(
            run_jobs(
                tmp_path, client, [Job("a")], listener=listener, wait="callback", poll_interval=60
            ),
            5,
        )
    assert pushed == [200] and result.ok
    assert listener.pushes_rejected == 0


@pytest.mark.anyio
async def test_an_ambiguous_create_adopts_the_task_its_pushes_name(tmp_path: Path) -> None:
    """The create's answer was lost after the task was made: the task's push on the job's own
    path names it; a query confirms it; the job adopts it (recorded) instead of paying again."""
    client = FakeClient(polls_to_finish=0)
    async with CallbackListener() as listener, httpx.AsyncClient() as http:
        real_create = client.create_task

        async def created_but_lost(body: dict[str, Any], **kw: Any) -> str:
            task_id = await real_create(body, **kw)
            push = {"task_id": task_id, "status": "processing"}
            assert (await http.post(body["callback_url"], json=push)).status_code == 200
            raise AmbiguousSubmitError("POST /v1/video_generation: HTTP 502 after it was sent")

        client.create_task = created_but_lost  # type: ignore[method-assign]
        result, _, _ = await asyncio.wait_for(
            run_jobs(tmp_path, client, [Job("a")], listener=listener, poll_interval=0.05), 10
        )
    assert len(client.created) == 1 and result.ok
    record = result.outcomes[0].record
    assert record.state == "success" and record.task_id == "1001"


@pytest.mark.anyio
async def test_without_callbacks_an_ambiguous_create_stays_unknown(tmp_path: Path) -> None:
    client = FakeClient()
    client.create_errors["p"] = AmbiguousSubmitError("HTTP 503 after the request was sent")
    result, _, _ = await run_jobs(tmp_path, client, [Job("a")])
    assert result.outcomes[0].record.state == "unknown" and client.created == []


@pytest.mark.anyio
async def test_a_failed_confirming_query_is_retried_promptly(tmp_path: Path) -> None:
    """After a Success push, a query that fails is asked again within a second, not at the
    next poll (60 s here)."""
    from mmgen.errors import TransportError

    client = FakeClient(polls_to_finish=0)
    real_query = client.query_task
    failures = iter([api_error(1002, "rate limit"), TransportError("connection reset")])

    async def flaky(task_id: str, **_: Any) -> TaskStatus:
        error = next(failures, None)
        if error is not None:
            raise error
        return await real_query(task_id)

    client.query_task = flaky  # type: ignore[method-assign]
    async with CallbackListener() as listener, httpx.AsyncClient() as http:
        real_create = client.create_task

        async def create_and_finish(body: dict[str, Any], **kw: Any) -> str:
            task_id = await real_create(body, **kw)
            push = {"task_id": task_id, "status": "success", "file_id": "f" + task_id}
            await http.post(body["callback_url"], json=push)
            return task_id

        client.create_task = create_and_finish  # type: ignore[method-assign]
        started = asyncio.get_running_loop().time()
        result, _, _ = await asyncio.wait_for(
            run_jobs(
                tmp_path, client, [Job("a")], listener=listener, wait="auto", poll_interval=60
            ),
            10,
        )
    assert result.ok and asyncio.get_running_loop().time() - started < 5
