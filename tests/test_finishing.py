"""How jobs finish: turns taken a few at a time, the turn's time limit, the retrieve prefetched
while a push is confirmed, and the records a finished job leaves (fake client, no network)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

import mmgen.run.turns
from mmgen.api.client import FileInfo, TaskStatus
from mmgen.run.listener import CallbackListener
from mmgen.run.turns import FINISHING_IN_FLIGHT
from mmgen.state.records import JOURNAL
from tests.fakes import FakeClient, Job
from tests.test_runner_unit import run_jobs


class CountingClient(FakeClient):
    """Counts the jobs between their first retrieve and the end of their download."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.active = 0
        self.max_active = 0
        self.retrieved: list[str] = []

    async def retrieve_file(self, file_id: str, *, attempts: int | None = None) -> FileInfo:
        self.retrieved.append(file_id)
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        await asyncio.sleep(0)  # let every other job that could run now do so
        return await super().retrieve_file(file_id, attempts=attempts)

    async def download(self, url, dest: Path, **kw: Any):
        for _ in range(3):
            await asyncio.sleep(0)
        try:
            return await super().download(url, dest, **kw)
        finally:
            self.active -= 1


@pytest.mark.anyio
async def test_jobs_ending_together_finish_a_few_at_a_time(tmp_path: Path) -> None:
    client = CountingClient()
    jobs = [Job(f"j{i}") for i in range(12)]
    result, _, _ = await run_jobs(tmp_path, client, jobs, wait="poll")
    assert result.ok and len(result.outcomes) == 12
    # Before turns every job that had its status downloaded at once (up to 16).
    assert client.max_active == FINISHING_IN_FLIGHT


@pytest.mark.anyio
async def test_a_turn_held_too_long_lets_the_next_job_go(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mmgen.run.turns, "FINISHING_IN_FLIGHT", 1)
    monkeypatch.setattr(mmgen.run.turns, "TURN_HOLD_SECONDS", 0.0)
    others_done = asyncio.Event()
    finished: list[str] = []

    class StallingClient(FakeClient):
        """The first download stalls until every other job has finished."""

        async def download(self, url, dest: Path, **kw: Any):
            first = self.downloads == 0
            self.downloads += 1
            if first:
                await asyncio.wait_for(others_done.wait(), 10)
            self.downloads -= 1  # FakeClient counts it again
            got = await super().download(url, dest, **kw)
            finished.append(dest.name)
            if len(finished) == 4:
                others_done.set()
            return got

    client = StallingClient()
    result, _, _ = await asyncio.wait_for(
        run_jobs(tmp_path, client, [Job(f"j{i}") for i in range(5)], wait="poll"), 20
    )
    # With the one turn held for the whole stall, the others could not finish first.
    assert result.ok and len(finished) == 5


@pytest.mark.anyio
async def test_a_turn_that_ran_out_is_not_waited_for_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """A job whose turn ran out while its push was confirmed (a far API) goes on to download
    without queueing for a turn a second time; giving a turn back (a push not confirmed) lets
    the next terminal push queue for a new one."""
    monkeypatch.setattr(mmgen.run.turns, "TURN_HOLD_SECONDS", 0.01)
    gate = asyncio.Semaphore(1)
    turn = mmgen.run.turns.Turn(gate)
    await turn.take()
    await asyncio.sleep(0.05)  # runs out
    await gate.acquire()  # another job holds the only turn, for good
    await asyncio.wait_for(turn.take(), 1)  # the download round: no second wait
    turn.give_back()
    assert gate.locked()  # it gave back nothing it did not hold
    waiting = asyncio.ensure_future(turn.take())
    await asyncio.sleep(0.05)
    assert not waiting.done()  # after give_back a new turn is waited for
    gate.release()
    await asyncio.wait_for(waiting, 1)
    turn.give_back()
    assert not gate.locked()


async def _wait_until(predicate: Any) -> None:
    for _ in range(1000):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


@pytest.mark.anyio
async def test_a_terminal_push_starts_the_retrieve_while_the_query_confirms_it(
    tmp_path: Path,
) -> None:
    retrieving = asyncio.Event()

    class Client(FakeClient):
        retrieves = 0

        async def query_task(self, task_id: str, *, attempts: int | None = None) -> TaskStatus:
            if self.polls_to_finish == 0:  # the confirming query: answer once the file is asked
                await asyncio.wait_for(retrieving.wait(), 5)
            return await super().query_task(task_id, attempts=attempts)

        async def retrieve_file(self, file_id: str, *, attempts: int | None = None) -> FileInfo:
            self.retrieves += 1
            retrieving.set()
            return await super().retrieve_file(file_id, attempts=attempts)

    client = Client(polls_to_finish=10_000)
    async with CallbackListener() as listener, httpx.AsyncClient() as http:
        run = asyncio.create_task(
            run_jobs(tmp_path, client, [Job("a")], listener=listener, wait="callback")
        )
        await _wait_until(lambda: listener.is_watching("1001"))
        client.polls_to_finish = 0
        push = {"task_id": "1001", "status": "success", "file_id": "f1001"}
        assert (await http.post(listener.callback_url, json=push)).status_code == 200
        result, _, _ = await asyncio.wait_for(run, 10)
    assert result.ok and result.outcomes[0].record.file_id == "f1001"
    assert client.retrieves == 1  # the prefetched answer was used, not asked again


@pytest.mark.anyio
async def test_a_push_naming_another_file_does_not_choose_the_download(tmp_path: Path) -> None:
    client = CountingClient(polls_to_finish=10_000)
    downloaded: list[str] = []
    original = client.download

    async def download(url: str, dest: Path, **kw: Any) -> Any:
        downloaded.append(url)
        return await original(url, dest, **kw)

    client.download = download  # type: ignore[method-assign]
    async with CallbackListener() as listener, httpx.AsyncClient() as http:
        run = asyncio.create_task(
            run_jobs(tmp_path, client, [Job("a")], listener=listener, wait="callback")
        )
        await _wait_until(lambda: listener.is_watching("1001"))
        client.polls_to_finish = 0  # done; but the push names a file that is not the task's
        push = {"task_id": "1001", "status": "success", "file_id": "forged"}
        assert (await http.post(listener.callback_url, json=push)).status_code == 200
        result, _, _ = await asyncio.wait_for(run, 10)
    record = result.outcomes[0].record
    assert result.ok and record.file_id == "f1001"
    assert downloaded == ["http://cdn.invalid/f1001"]
    assert "f1001" in client.retrieved  # retrieved for real after the forged prefetch


@pytest.mark.anyio
async def test_a_finished_job_leaves_three_records(tmp_path: Path) -> None:
    """submitting, submitted, success: the file id is recorded with the outcome, not in a
    fsync of its own before the download (nothing is spent between the two)."""
    result, _, _ = await run_jobs(tmp_path, FakeClient(), [Job("a")], wait="poll")
    assert result.ok
    lines = [json.loads(line) for line in (tmp_path / JOURNAL).read_text().splitlines()]
    assert [line["state"] for line in lines] == ["submitting", "submitted", "success"]
    assert lines[-1]["file_id"] == "f1001" and lines[-1]["width"] == 1280
