"""The callback listener: challenge echo, a path per job under the run's unguessable one."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from mmgen.run.listener import CallbackListener


@pytest.mark.anyio
async def test_challenge_push_and_rejections() -> None:
    async with CallbackListener("127.0.0.1", 0) as listener, httpx.AsyncClient() as http:
        url = listener.url_for("job-a")
        assert url.startswith(listener.callback_url + "/")
        assert url.startswith("http://127.0.0.1:") and listener.port != 0
        answer = await http.post(url, json={"challenge": "c-123"}, timeout=3)
        assert answer.status_code == 200
        assert answer.json() == {"challenge": "c-123"}

        queue = listener.watch("job-a")
        push = {"task_id": "42", "status": "processing", "base_resp": {"status_code": 0}}
        assert (await http.post(url, json=push)).status_code == 200
        assert await asyncio.wait_for(queue.get(), 1) == push

        # a job not waited on, a wrong run secret, bad bodies, wrong method: refused, not queued
        other = listener.url_for("job-b")
        assert (await http.post(other, json={"task_id": "7"})).status_code == 404
        wrong = listener.callback_url.rsplit("/", 1)[0] + "/guess/job-a"
        assert (await http.post(wrong, json={"task_id": "42"})).status_code == 404
        assert (await http.post(url, content=b"{nope")).status_code == 400
        assert (await http.post(url, json=[1, 2])).status_code == 400
        assert (await http.post(url, content=b"x" * 70_000)).status_code == 413
        assert (await http.get(url)).status_code == 405
        assert queue.empty()

        listener.unwatch("job-a")  # a late push for a finished job: acknowledged, dropped
        assert (await http.post(url, json=push)).status_code == 200
        assert queue.empty()
        assert listener.challenges_answered == 1
        assert listener.pushes_accepted == 1 and listener.pushes_late == 1
    # stopped: nothing listens any more
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient() as http:
            await http.post(url, json={"challenge": "x"})


def test_public_url_and_tokens_are_per_run() -> None:
    a = CallbackListener(public_url="https://hooks.example.org/base/")
    b = CallbackListener(public_url="https://hooks.example.org/base/")
    assert a.callback_url.startswith("https://hooks.example.org/base/mmgen/")
    assert a.token != b.token and len(a.token) >= 32
