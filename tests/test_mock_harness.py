"""The harness under the pytest plugin (mock_server.testing.harness): per-test apps shut down
when the default returns, the shifted clock, option merging, and advance() when callbacks lag."""

from __future__ import annotations

from typing import Any

import pytest

# --- the harness under the plugin ---------------------------------------------------------------


def test_a_per_test_mock_is_shut_down_when_the_default_returns(serve_app) -> None:
    """restore() runs the per-test app's lifespan shutdown: its pending callbacks stop."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from mock_server.testing.harness import MockService

    async def echo(request):
        return JSONResponse({"challenge": (await request.json()).get("challenge")})

    hook = serve_app(Starlette(routes=[Route("/hook", echo, methods=["POST"])])) + "/hook"
    with MockService() as service:
        mock = service.activate({"generation_seconds": 60})
        body = {"model": "MiniMax-Hailuo-02", "prompt": "x", "callback_url": hook}
        with mock.client(headers={"Authorization": "Bearer k"}) as http:
            assert http.post("/v1/video_generation", json=body).json()["task_id"]
        per_test = mock.app
        assert per_test is not service.default_app
        assert per_test.state.mock.callbacks.pending == 1
        service.restore()
        assert service.app is service.default_app
        assert per_test.state.mock.callbacks.pending == 0
        assert service.activate().stats()["created"] == 0


def test_the_shifted_clock_only_moves_forward() -> None:
    from mock_server.testing.harness import ShiftedClock

    clock = ShiftedClock()
    before = clock()
    clock.advance(3600)
    assert clock() - before >= 3600
    with pytest.raises(ValueError, match="only moves forward"):
        clock.advance(-1)


def test_options_merge_key_by_key() -> None:
    from mock_server.testing.harness import merge_options

    base: dict[str, Any] = {"seed": 0, "faults": {"rate_limit": {"probability": 0.5, "rpm": 5}}}
    merged = merge_options(base, {"faults": {"rate_limit": {"rpm": 1}, "codes": [1]}})
    assert merged == {
        "seed": 0,
        "faults": {"rate_limit": {"probability": 0.5, "rpm": 1}, "codes": [1]},
    }
    assert base["faults"]["rate_limit"]["rpm"] == 5  # not modified


def test_advance_says_so_when_due_callbacks_are_not_attempted_in_time(serve_app) -> None:
    import asyncio
    import threading

    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from mock_server.testing.harness import MockService

    release = threading.Event()

    async def stalling(request):
        data = await request.json()
        if "challenge" in data:
            return JSONResponse({"challenge": data["challenge"]})
        while not release.is_set():  # holds every update until the test lets go
            await asyncio.sleep(0.01)
        return JSONResponse({})

    hook = serve_app(Starlette(routes=[Route("/hook", stalling, methods=["POST"])])) + "/hook"
    with MockService() as service:
        mock = service.activate({"generation_seconds": 10})
        body = {"model": "MiniMax-Hailuo-02", "prompt": "x", "callback_url": hook}
        with mock.client(headers={"Authorization": "Bearer k"}) as http:
            task_id = http.post("/v1/video_generation", json=body).json()["task_id"]
        try:
            with pytest.raises(TimeoutError, match=f"tasks {task_id}.*aadvance"):
                mock.advance(10, timeout=0.3)
        finally:
            release.set()
        mock.settle_callbacks()
        assert [d["result"] for d in mock.task(task_id)["callbacks"]] == ["ok", "ok", "ok"]
