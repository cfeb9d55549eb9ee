"""Callbacks: the challenge echo, then status updates, received by a small starlette app."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mock_server import MockConfig
from mock_server.config import CallbackFaults, ChallengeFaults, Faults, TaskFaults

SEED_BODY = {
    "model": "S2V-01",
    "prompt": "A girl runs toward the camera and winks with a smile.",
    "subject_reference": [{"type": "character", "image": ["https://example.org/face.jpg"]}],
}


@dataclass
class Receiver:
    """A callback receiver of the kind the API docs show, recording what it gets."""

    echo: str = "same"  # same | wrong | slow
    update_status: int = 200
    slow_seconds: float = 1.0
    received: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def app(self) -> Starlette:
        async def hook(request: Request) -> Response:
            body = await request.json()
            with self.lock:
                self.received.append(body)
            if "challenge" in body:
                if self.echo == "slow":
                    await asyncio.sleep(self.slow_seconds)
                value = body["challenge"] if self.echo != "wrong" else "nope"
                return JSONResponse({"challenge": value})
            return JSONResponse({"status": "received"}, self.update_status)

        return Starlette(routes=[Route("/hook", hook, methods=["POST"])])

    def updates(self) -> list[dict[str, Any]]:
        with self.lock:
            return [b for b in self.received if "status" in b]

    def wait(self, count: int, timeout: float = 10) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.received) >= count:
                    return list(self.received)
            time.sleep(0.005)
        raise AssertionError(f"received only {self.received}")


@pytest.fixture
def receiver(serve_app):
    def start(**options: Any) -> tuple[Receiver, str]:
        r = Receiver(**options)
        return r, serve_app(r.app()) + "/hook"

    return start


def create(base_url: str, callback_url: str, **extra: Any) -> str:
    response = httpx.post(
        base_url + "/v1/video_generation",
        json={**SEED_BODY, "callback_url": callback_url, **extra},
        headers={"Authorization": "Bearer k"},
        trust_env=False,
        verify=False,
    )
    body = response.json()
    assert body["base_resp"]["status_code"] == 0, body
    return str(body["task_id"])


def finished(mock: Any, count: int = 1) -> dict[str, Any]:
    """Wait until every planned delivery of ``count`` tasks is over."""
    stats: dict[str, Any] = mock.wait_for(
        lambda s: s["created"] >= count and s["callbacks_pending"] == 0
    )
    return stats


def test_challenge_echo_then_processing_and_success(mock_api, receiver):
    hook, url = receiver()
    task_id = create(mock_api.base_url, url)
    received = hook.wait(3)
    challenge, processing, success = received
    assert set(challenge) == {"challenge"} and len(challenge["challenge"]) >= 16
    assert processing == {
        "task_id": task_id,
        "status": "processing",
        "base_resp": {"status_code": 0, "status_msg": "success"},
    }
    assert success["status"] == "success"
    assert success["task_id"] == task_id
    assert success["file_id"].isdigit()
    assert (success["video_width"], success["video_height"]) == (1280, 720)
    stats = finished(mock_api)
    assert stats["challenges_ok"] == 1
    latency = stats["challenge_latency_ms"]
    assert 0 < latency["p50"] <= latency["p99"] <= latency["max"]
    assert stats["callbacks_sent"] == stats["callbacks_delivered"] == 2
    journal = mock_api.task(task_id)["callbacks"]
    assert [(d["kind"], d["status"], d["result"]) for d in journal] == [
        ("challenge", None, "ok"),
        ("update", "processing", "ok"),
        ("update", "success", "ok"),
    ]
    assert all(d["http_status"] == 200 for d in journal)
    assert journal[0]["ok"] is True and journal[0]["latency_ms"] > 0
    (logged,) = mock_api.requests()
    assert logged["challenge"]["ok"] is True


def test_failed_task_is_reported_as_failed(start_mock, receiver):
    mock = start_mock(
        MockConfig(generation_seconds=0.1, faults=Faults(tasks=TaskFaults(fail_probability=1)))
    )
    hook, url = receiver()
    create(mock.base_url, url)
    assert [u["status"] for u in hook.updates() or hook.wait(3)[1:]] == ["processing", "failed"]


def refused_create(base_url: str, callback_url: str) -> dict[str, Any]:
    response = httpx.post(
        base_url + "/v1/video_generation",
        json={**SEED_BODY, "callback_url": callback_url},
        headers={"Authorization": "Bearer k"},
        trust_env=False,
        verify=False,
        timeout=10,
    )
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def assert_refused_without_a_task(mock: Any, body: dict[str, Any], result: str) -> None:
    """The create answered 2013 'fail to check callback url'; nothing exists."""
    assert body["base_resp"] == {
        "status_code": 2013,
        "status_msg": "invalid params, fail to check callback url",
    }
    assert body["task_id"] == ""
    assert mock.tasks() == []
    stats = mock.stats()
    assert stats["created"] == 0
    assert stats["rejected"] == 1
    assert stats["challenges_failed"] == 1
    assert stats["challenge_latency_ms"]["max"] is not None
    (logged,) = mock.requests()
    assert logged["code"] == 2013
    assert logged["challenge"]["ok"] is False
    assert logged["challenge"]["result"].startswith(result)


@pytest.mark.parametrize(
    ("echo", "result"), [("wrong", "wrong echo"), ("slow", "timeout")], ids=["wrong", "slow"]
)
def test_failed_check_refuses_the_create(start_mock, receiver, echo, result):
    mock = start_mock(MockConfig(generation_seconds=0.05, challenge_timeout=0.3))
    hook, url = receiver(echo=echo, slow_seconds=0.6)
    body = refused_create(mock.base_url, url)
    assert_refused_without_a_task(mock, body, result)
    assert hook.updates() == []
    assert len(hook.received) == 1  # the challenge, and nothing after it


def test_unreachable_receiver_refuses_the_create(mock_api):
    body = refused_create(mock_api.base_url, "http://127.0.0.1:9/hook")  # discard port: refused
    assert_refused_without_a_task(mock_api, body, "error: ConnectError")


def test_refused_creates_use_no_ids(start_mock, receiver):
    """A refused create consumes no id: the next accepted task gets the id a mock that never
    saw the refusal gives its first task (same seed)."""
    _bad, bad_url = receiver(echo="wrong")
    _good, good_url = receiver()
    refusing = start_mock(MockConfig(seed=11))
    assert refused_create(refusing.base_url, bad_url)["base_resp"]["status_code"] == 2013
    first = create(refusing.base_url, good_url)
    fresh = start_mock(MockConfig(seed=11))
    assert create(fresh.base_url, good_url) == first


@pytest.mark.parametrize(
    ("echo", "result"), [("wrong", "wrong echo"), ("slow", "timeout")], ids=["wrong", "slow"]
)
def test_async_mode_failed_handshake_means_no_updates(start_mock, receiver, echo, result):
    config = MockConfig(generation_seconds=0.05, challenge_timeout=0.3, challenge_mode="async")
    mock = start_mock(config)
    hook, url = receiver(echo=echo, slow_seconds=0.6)
    task_id = create(mock.base_url, url)
    stats = finished(mock)
    assert stats["challenges_failed"] == 1
    assert stats["callbacks_sent"] == 0
    assert hook.updates() == []
    (entry,) = mock.task(task_id)["callbacks"]
    assert entry["kind"] == "challenge"
    assert entry["result"] == result
    assert entry["ok"] is False


def test_async_mode_unreachable_receiver_is_journaled(start_mock):
    mock = start_mock(MockConfig(generation_seconds=0.05, challenge_mode="async"))
    task_id = create(mock.base_url, "http://127.0.0.1:9/hook")  # discard port: refused
    finished(mock)
    (entry,) = mock.task(task_id)["callbacks"]
    assert entry["result"].startswith("error: ConnectError")


def test_update_errors_are_retried_when_configured(start_mock, receiver):
    mock = start_mock(
        MockConfig(generation_seconds=0, callback_retries=1, callback_retry_delay=0.01)
    )
    _hook, url = receiver(update_status=500)
    task_id = create(mock.base_url, url)
    stats = finished(mock)
    assert stats["callbacks_sent"] == 4  # two updates, two attempts each
    assert stats["callbacks_failed"] == 4
    updates = [d for d in mock.task(task_id)["callbacks"] if d["kind"] == "update"]
    assert [(d["attempt"], d["result"]) for d in updates] == [
        (1, "http 500"),
        (2, "http 500"),
        (1, "http 500"),
        (2, "http 500"),
    ]


def test_async_mode_answers_creates_before_the_check(start_mock, serve_app):
    """In async mode the create never waits for the receiver: both creates are answered while
    the receiver still holds both challenges."""
    release = threading.Event()
    held: list[str] = []

    async def hook(request: Request) -> Response:
        body = await request.json()
        held.append(body["challenge"])
        await asyncio.to_thread(release.wait, 10)
        return JSONResponse({"challenge": body["challenge"]})

    url = serve_app(Starlette(routes=[Route("/hook", hook, methods=["POST"])])) + "/hook"
    mock = start_mock(MockConfig(generation_seconds=0.1, challenge_mode="async"))
    try:
        create(mock.base_url, url)
        create(mock.base_url, url)
        assert mock.stats()["created"] == 2
        assert mock.stats()["challenges_ok"] == 0
    finally:
        release.set()
    assert mock.wait_for(lambda s: s["challenges_ok"] == 2)


def test_sync_mode_answers_the_create_after_the_check(start_mock, serve_app):
    """In sync mode (the default) the create is answered only once the receiver has echoed."""
    echoed = threading.Event()

    async def hook(request: Request) -> Response:
        body = await request.json()
        if "challenge" in body:
            echoed.set()
        return JSONResponse({"challenge": body.get("challenge")})

    url = serve_app(Starlette(routes=[Route("/hook", hook, methods=["POST"])])) + "/hook"
    mock = start_mock(MockConfig(generation_seconds=60))
    create(mock.base_url, url)
    assert echoed.is_set()
    stats = mock.stats()
    assert stats["challenges_ok"] == 1 and stats["created"] == 1


def faulty(**callbacks: Any) -> MockConfig:
    return MockConfig(generation_seconds=10, faults=Faults(callbacks=CallbackFaults(**callbacks)))


def test_dropped_updates(start_mock, receiver, manual_clock):
    mock = start_mock(faulty(drop=1), clock=manual_clock)
    hook, url = receiver()
    task_id = create(mock.base_url, url)
    hook.wait(1)
    manual_clock.advance(10)
    stats = finished(mock)
    assert stats["callbacks_dropped"] == 2 and stats["callbacks_sent"] == 0
    assert hook.updates() == []
    results = [d["result"] for d in mock.task(task_id)["callbacks"]]
    assert results == ["ok", "dropped (fault)", "dropped (fault)"]


def test_duplicated_updates(start_mock, receiver, manual_clock):
    mock = start_mock(faulty(duplicate=1), clock=manual_clock)
    hook, url = receiver()
    create(mock.base_url, url)
    manual_clock.advance(10)
    hook.wait(5)
    assert [u["status"] for u in hook.updates()] == [
        "processing",
        "processing",
        "success",
        "success",
    ]


def test_reordered_updates_arrive_late(start_mock, receiver, manual_clock):
    mock = start_mock(faulty(reorder=1), clock=manual_clock)
    hook, url = receiver()
    task_id = create(mock.base_url, url)
    hook.wait(1)
    # the plan, not a sleep, shows the Processing update held back behind Success
    planned = {c["status"]: c for c in mock.task(task_id)["planned"]["callbacks"]}
    assert "reordered" in planned["Processing"]["faults"]
    assert planned["Processing"]["due"] >= planned["Success"]["due"]
    manual_clock.advance(5)  # Processing began at 3 s: its update is held back
    manual_clock.advance(5)
    hook.wait(3)
    assert [u["status"] for u in hook.updates()] == ["success", "processing"]


def test_delayed_updates(start_mock, receiver, manual_clock):
    mock = start_mock(faulty(delay=1, delay_seconds=4), clock=manual_clock)
    hook, url = receiver()
    task_id = create(mock.base_url, url)
    hook.wait(1)
    created = mock.task(task_id)["created_at"]
    planned = {c["status"]: c for c in mock.task(task_id)["planned"]["callbacks"]}
    assert "delayed" in planned["Processing"]["faults"]
    assert planned["Processing"]["due"] - created == pytest.approx(7)  # at 3 s, 4 s late
    manual_clock.advance(6)  # Processing at 3 s, its update due at 7 s
    manual_clock.advance(1)
    hook.wait(2)
    manual_clock.advance(7)  # Success at 10 s, due at 14 s
    hook.wait(3)
    plan = mock.task(task_id)["planned"]["callbacks"]
    assert [p["due"] - mock.task(task_id)["created_at"] for p in plan] == pytest.approx([7, 14])


@pytest.mark.parametrize("mode", ["reject", "malformed"])
def test_challenge_faults_refuse_the_create(start_mock, receiver, mode):
    mock = start_mock(
        MockConfig(
            generation_seconds=0.05,
            faults=Faults(challenge=ChallengeFaults(probability=1, mode=mode)),
        )
    )
    hook, url = receiver()
    body = refused_create(mock.base_url, url)
    assert_refused_without_a_task(mock, body, "rejected" if mode == "reject" else mode)
    assert mock.requests()[0]["fault"] == "challenge"
    assert mock.stats()["faults"] == {"challenge": 1}
    assert hook.updates() == []
    if mode == "malformed":
        assert hook.received == [{}]


@pytest.mark.parametrize("challenge_mode", ["sync", "async"])
@pytest.mark.parametrize("mode", ["reject", "malformed", "skip"])
def test_challenge_faults(start_mock, receiver, mode, challenge_mode):
    mock = start_mock(
        MockConfig(
            generation_seconds=0.05,
            challenge_mode=challenge_mode,
            faults=Faults(challenge=ChallengeFaults(probability=1, mode=mode)),
        )
    )
    hook, url = receiver()
    if mode != "skip" and challenge_mode == "sync":
        assert refused_create(mock.base_url, url)["base_resp"]["status_code"] == 2013
        return
    task_id = create(mock.base_url, url)
    stats = finished(mock)
    journal = mock.task(task_id)["callbacks"]
    assert journal[0]["kind"] == "challenge"
    assert journal[0]["fault"] == mode
    if mode == "skip":
        assert stats["challenges_skipped"] == 1
        assert [u["status"] for u in hook.updates()] == ["processing", "success"]
        assert not any("challenge" in b for b in hook.received)
    else:
        assert stats["challenges_failed"] == 1
        assert hook.updates() == []
        assert journal[0]["result"].startswith(f"{'rejected' if mode == 'reject' else mode}")
    if mode == "malformed":
        assert hook.received == [{}]


def test_shutdown_cancels_pending_deliveries(start_mock, receiver, manual_clock):
    mock = start_mock(MockConfig(generation_seconds=60), clock=manual_clock)
    hook, url = receiver()
    create(mock.base_url, url)
    hook.wait(1)
    dispatcher = mock.app.state.mock.callbacks
    assert dispatcher.pending == 1
    mock.reset()
    assert mock.wait_for(lambda s: s["callbacks_pending"] == 0)


def test_callback_posts_are_bounded(start_mock, serve_app):
    """callback_concurrency caps the POSTs in flight: with a receiver that holds every request
    until two are waiting, eight tasks' checks and updates never run more than two at once."""
    in_flight = 0
    lock = threading.Lock()
    two_waiting = threading.Event()

    async def hook(request: Request) -> Response:
        nonlocal in_flight
        body = await request.json()
        with lock:
            in_flight += 1
            if in_flight >= 2:
                two_waiting.set()
        await asyncio.to_thread(two_waiting.wait, 10)
        with lock:
            in_flight -= 1
        return JSONResponse({"challenge": body.get("challenge")})

    url = serve_app(Starlette(routes=[Route("/hook", hook, methods=["POST"])])) + "/hook"
    config = MockConfig(generation_seconds=0, challenge_mode="async", callback_concurrency=2)
    mock = start_mock(config)
    for _ in range(8):
        create(mock.base_url, url)
    stats = mock.wait_for(lambda s: s["callbacks_delivered"] == 16 and s["callbacks_pending"] == 0)
    assert stats["challenges_ok"] == 8
    assert stats["callbacks_in_flight"] == 0
    assert stats["callbacks_in_flight_max"] == 2
