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
    assert (success["video_width"], success["video_height"]) == (320, 180)
    stats = finished(mock_api)
    assert stats["challenges_ok"] == 1
    assert stats["callbacks_sent"] == stats["callbacks_delivered"] == 2
    journal = mock_api.task(task_id)["callbacks"]
    assert [(d["kind"], d["status"], d["result"]) for d in journal] == [
        ("challenge", None, "ok"),
        ("update", "processing", "ok"),
        ("update", "success", "ok"),
    ]
    assert all(d["http_status"] == 200 for d in journal)


def test_failed_task_is_reported_as_failed(start_mock, receiver):
    mock = start_mock(
        MockConfig(generation_seconds=0.1, faults=Faults(tasks=TaskFaults(fail_probability=1)))
    )
    hook, url = receiver()
    create(mock.base_url, url)
    assert [u["status"] for u in hook.updates() or hook.wait(3)[1:]] == ["processing", "failed"]


@pytest.mark.parametrize(
    ("echo", "result"), [("wrong", "wrong echo"), ("slow", "timeout")], ids=["wrong", "slow"]
)
def test_failed_handshake_means_no_updates(start_mock, receiver, echo, result):
    mock = start_mock(MockConfig(generation_seconds=0.05, challenge_timeout=0.3))
    hook, url = receiver(echo=echo, slow_seconds=0.6)
    task_id = create(mock.base_url, url)
    stats = finished(mock)
    assert stats["challenges_failed"] == 1
    assert stats["callbacks_sent"] == 0
    time.sleep(0.1)
    assert hook.updates() == []
    (entry,) = mock.task(task_id)["callbacks"]
    assert entry["kind"] == "challenge"
    assert entry["result"] == result


def test_unreachable_receiver_is_journaled(mock_api, serve_app):
    task_id = create(mock_api.base_url, "http://127.0.0.1:9/hook")  # discard port: refused
    finished(mock_api)
    (entry,) = mock_api.task(task_id)["callbacks"]
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


def test_deliveries_never_block_the_api(start_mock, receiver):
    mock = start_mock(MockConfig(generation_seconds=0.1, challenge_timeout=1))
    hook, url = receiver(echo="slow", slow_seconds=0.5)
    started = time.monotonic()
    create(mock.base_url, url)
    create(mock.base_url, url)
    assert mock.stats()["created"] == 2
    assert time.monotonic() - started < 0.45
    hook.wait(2)  # both challenges are being answered, slowly
    assert mock.wait_for(lambda s: s["challenges_ok"] == 2)


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
    create(mock.base_url, url)
    hook.wait(1)
    manual_clock.advance(5)  # Processing began at 3 s: its update is held back
    time.sleep(0.2)
    assert hook.updates() == []
    manual_clock.advance(5)
    hook.wait(3)
    assert [u["status"] for u in hook.updates()] == ["success", "processing"]


def test_delayed_updates(start_mock, receiver, manual_clock):
    mock = start_mock(faulty(delay=1, delay_seconds=4), clock=manual_clock)
    hook, url = receiver()
    task_id = create(mock.base_url, url)
    hook.wait(1)
    manual_clock.advance(6)  # Processing at 3 s, its update due at 7 s
    time.sleep(0.2)
    assert hook.updates() == []
    manual_clock.advance(1)
    hook.wait(2)
    manual_clock.advance(7)  # Success at 10 s, due at 14 s
    hook.wait(3)
    plan = mock.task(task_id)["planned"]["callbacks"]
    assert [p["due"] - mock.task(task_id)["created_at"] for p in plan] == pytest.approx([7, 14])


@pytest.mark.parametrize("mode", ["reject", "malformed", "skip"])
def test_challenge_faults(start_mock, receiver, mode):
    mock = start_mock(
        MockConfig(
            generation_seconds=0.05,
            faults=Faults(challenge=ChallengeFaults(probability=1, mode=mode)),
        )
    )
    hook, url = receiver()
    task_id = create(mock.base_url, url)
    stats = finished(mock)
    time.sleep(0.05)
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
