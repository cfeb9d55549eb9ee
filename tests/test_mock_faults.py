"""Every injectable fault, over real HTTP, and its reproducibility under a seed."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from mock_server import MockConfig, config_from_dict
from mock_server.config import (
    BalanceFaults,
    CodeFault,
    DownloadFaults,
    DropFaults,
    Faults,
    RateLimitFaults,
    SensitiveFaults,
    ServerErrorFaults,
    TaskFaults,
)
from mock_server.responses import CHUNK

SEED_BODY = {
    "model": "S2V-01",
    "prompt": "A girl runs toward the camera and winks with a smile.",
    "subject_reference": [{"type": "character", "image": ["https://example.org/face.jpg"]}],
}


def client(mock: Any) -> httpx.Client:
    c: httpx.Client = mock.client(headers={"Authorization": "Bearer k"}, timeout=10)
    return c


def code_of(response: httpx.Response) -> int:
    return int(response.json()["base_resp"]["status_code"])


def create(c: httpx.Client, **extra: Any) -> httpx.Response:
    return c.post("/v1/video_generation", json={**SEED_BODY, **extra})


def query(c: httpx.Client, task_id: str) -> dict[str, Any]:
    result: dict[str, Any] = c.get("/v1/query/video_generation", params={"task_id": task_id}).json()
    return result


def with_faults(generation_seconds: float = 0, **faults: Any) -> MockConfig:
    return MockConfig(
        generation_seconds=generation_seconds, report_file_bytes=True, faults=Faults(**faults)
    )


# --- rate limits ---------------------------------------------------------------------------


def test_rate_limit_by_probability(start_mock):
    mock = start_mock(with_faults(rate_limit=RateLimitFaults(probability=1)))
    with client(mock) as c:
        refused = create(c)
        assert refused.status_code == 200
        assert refused.json() == {
            "task_id": "",
            "base_resp": {"status_code": 1002, "status_msg": "rate limit exceeded(RPM)"},
        }
        # only the configured endpoints (create by default) are limited
        assert code_of(c.get("/v1/query/video_generation", params={"task_id": "1"})) == 2013
    assert mock.stats()["faults"] == {"rate_limit": 1}


def test_rate_limit_as_http_429_with_retry_after(start_mock):
    limit = RateLimitFaults(probability=1, http_status=429, retry_after=7, endpoints=["query"])
    mock = start_mock(with_faults(rate_limit=limit))
    with client(mock) as c:
        assert code_of(create(c)) == 0
        refused = c.get("/v1/query/video_generation", params={"task_id": "1"})
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "7"
    assert code_of(refused) == 1002


def test_rpm_budget_on_the_clock(start_mock, manual_clock):
    mock = start_mock(with_faults(rate_limit=RateLimitFaults(rpm=2)), clock=manual_clock)
    with client(mock) as c:
        assert [code_of(create(c)) for _ in range(3)] == [0, 0, 1002]
        manual_clock.advance(59)
        assert code_of(create(c)) == 1002
        manual_clock.advance(1)
        assert [code_of(create(c)) for _ in range(3)] == [0, 0, 1002]
    stats = mock.stats()
    assert stats["created"] == 4
    assert stats["faults"] == {"rpm_budget": 3}
    assert stats["errors"] == {"1002": 3}


def test_rpm_budget_counts_refused_creates_but_not_1002s(start_mock, manual_clock):
    """As documented in schemas/mock_config.json: every authenticated request counts, also one
    refused afterwards (here 2013 and 1026); a request refused with 1002 itself does not."""
    config = with_faults(
        rate_limit=RateLimitFaults(rpm=3), sensitive=SensitiveFaults(input_words=["forbidden"])
    )
    mock = start_mock(config, clock=manual_clock)
    with client(mock) as c:
        invalid = c.post("/v1/video_generation", json={"model": "S2V-01"})
        sensitive = create(c, prompt="forbidden")
        assert [code_of(invalid), code_of(sensitive)] == [2013, 1026]
        assert code_of(create(c)) == 0  # the third request of the minute
        assert [code_of(create(c)) for _ in range(3)] == [1002, 1002, 1002]
        manual_clock.advance(60)  # the 1002s used nothing: a whole budget again
        assert [code_of(create(c)) for _ in range(4)] == [0, 0, 0, 1002]
        no_key = c.post("/v1/video_generation", json=SEED_BODY, headers={"Authorization": ""})
        assert code_of(no_key) == 1004  # not authenticated: not counted either


# --- transport faults ----------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_html_pages(start_mock, status):
    mock = start_mock(with_faults(server_errors=ServerErrorFaults(create=1, status=status)))
    with client(mock) as c:
        response = create(c)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["Trace-Id"]
    assert b"nginx" in response.content
    assert mock.stats()["created"] == 0


@pytest.mark.parametrize("endpoint", ["query", "retrieve", "download"])
def test_server_errors_on_any_endpoint(start_mock, endpoint):
    errors = ServerErrorFaults()
    setattr(errors, endpoint, 1.0)
    mock = start_mock(with_faults(server_errors=errors))
    with client(mock) as c:
        task_id = create(c).json()["task_id"]
        if endpoint == "query":
            assert (
                c.get("/v1/query/video_generation", params={"task_id": task_id}).status_code == 503
            )
            return
        file_id = query(c, task_id)["file_id"]
        retrieved = c.get("/v1/files/retrieve", params={"file_id": file_id})
        if endpoint == "retrieve":
            assert retrieved.status_code == 503
            return
        assert c.get(retrieved.json()["file"]["download_url"]).status_code == 503


def test_created_task_behind_a_server_error(start_mock):
    mock = start_mock(with_faults(server_errors=ServerErrorFaults(create=1, create_commits=True)))
    with client(mock) as c:
        assert create(c).status_code == 503
    stats = mock.stats()
    assert stats["created"] == 1  # the ambiguous case: the client saw a 503
    assert stats["faults"] == {"server_error": 1}


@pytest.mark.parametrize("endpoint", ["create", "query", "retrieve", "download"])
def test_dropped_connections(start_mock, endpoint):
    drops = DropFaults()
    setattr(drops, endpoint, 1.0)
    mock = start_mock(with_faults(drops=drops))
    with client(mock) as c:
        if endpoint == "create":
            with pytest.raises(httpx.RemoteProtocolError):
                create(c)
            assert mock.stats()["created"] == 0
            return
        task_id = create(c).json()["task_id"]
        if endpoint == "query":
            with pytest.raises(httpx.RemoteProtocolError):
                query(c, task_id)
            return
        file_id = query(c, task_id)["file_id"]
        if endpoint == "retrieve":
            with pytest.raises(httpx.RemoteProtocolError):
                c.get("/v1/files/retrieve", params={"file_id": file_id})
            return
        url = c.get("/v1/files/retrieve", params={"file_id": file_id}).json()["file"]
        with pytest.raises(httpx.RemoteProtocolError):
            c.get(url["download_url"])
    assert mock.stats()["faults"] == {"drop": 1}


def test_dropped_create_that_committed(start_mock):
    mock = start_mock(with_faults(drops=DropFaults(create=1, create_commits=True)))
    with client(mock) as c, pytest.raises(httpx.RemoteProtocolError):
        create(c)
    assert mock.stats()["created"] == 1


# --- codes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [1000, 1001, 1013, 1024, 1033, 1039, 1041, 1042, 2045, 2056])
def test_any_documented_code_can_be_injected(start_mock, code):
    mock = start_mock(
        with_faults(codes=[CodeFault(code=code, endpoints=["create", "query", "retrieve"])])
    )
    with client(mock) as c:
        response = create(c)
        assert response.status_code == 200
        assert code_of(response) == code
        assert response.json()["base_resp"]["status_msg"]
        assert code_of(c.get("/v1/query/video_generation", params={"task_id": "1"})) == code
        assert code_of(c.get("/v1/files/retrieve", params={"file_id": "1"})) == code


def test_sensitive_input_words_get_1026(start_mock):
    mock = start_mock(with_faults(sensitive=SensitiveFaults(input_words=["Explosion"])))
    with client(mock) as c:
        refused = create(c, prompt="A huge EXPLOSION behind her")
        assert refused.json()["base_resp"] == {
            "status_code": 1026,
            "status_msg": "input new_sensitive",
        }
        assert code_of(create(c, prompt="A calm sea")) == 0
    assert mock.stats()["created"] == 1


def test_sensitive_input_at_random(start_mock):
    mock = start_mock(with_faults(sensitive=SensitiveFaults(input_probability=1)))
    with client(mock) as c:
        assert code_of(create(c)) == 1026


@pytest.mark.parametrize(
    "sensitive",
    [SensitiveFaults(output_words=["winks"]), SensitiveFaults(output_probability=1)],
    ids=["words", "probability"],
)
def test_sensitive_output_fails_the_task_with_1027(start_mock, manual_clock, sensitive):
    mock = start_mock(with_faults(6, sensitive=sensitive), clock=manual_clock)
    with client(mock) as c:
        task_id = create(c).json()["task_id"]
        assert query(c, task_id)["status"] == "Preparing"
        manual_clock.advance(6)
        body = query(c, task_id)
    assert body == {
        "task_id": task_id,
        "status": "Fail",
        "base_resp": {"status_code": 1027, "status_msg": "output new_sensitive"},
    }
    assert mock.stats()["Fail"] == 1


def test_tasks_that_fail(start_mock):
    mock = start_mock(with_faults(tasks=TaskFaults(fail_probability=1)))
    with client(mock) as c:
        task_id = create(c).json()["task_id"]
        body = query(c, task_id)
        assert body["status"] == "Fail"
        assert body["base_resp"]["status_code"] == 0
        assert "file_id" not in body
        file_id = mock.app.state.mock.store.tasks[task_id].file_id
        assert code_of(c.get("/v1/files/retrieve", params={"file_id": file_id})) == 2013


def test_failures_can_carry_a_code(start_mock):
    mock = start_mock(with_faults(tasks=TaskFaults(fail_probability=1, fail_code=1000)))
    with client(mock) as c:
        body = query(c, create(c).json()["task_id"])
    assert body["status"] == "Fail"
    assert body["base_resp"]["status_code"] == 1000


def test_slow_tasks(start_mock, manual_clock):
    config = with_faults(10, tasks=TaskFaults(slow_probability=1, slow_factor=3))
    mock = start_mock(config, clock=manual_clock)
    with client(mock) as c:
        task_id = create(c).json()["task_id"]
        manual_clock.advance(29)
        assert query(c, task_id)["status"] == "Processing"
        manual_clock.advance(1)
        assert query(c, task_id)["status"] == "Success"
    assert mock.task(task_id)["planned"]["faults"] == ["slow"]


def test_insufficient_balance_after_n_tasks(start_mock):
    mock = start_mock(with_faults(balance=BalanceFaults(max_tasks=2)))
    with client(mock) as c:
        codes = [code_of(create(c)) for _ in range(4)]
    assert codes == [0, 0, 1008, 1008]
    assert mock.stats()["created"] == 2


# --- downloads -----------------------------------------------------------------------------


def download_url(c: httpx.Client) -> tuple[str, int]:
    file_id = query(c, create(c).json()["task_id"])["file_id"]
    file = c.get("/v1/files/retrieve", params={"file_id": file_id}).json()["file"]
    return file["download_url"], file["bytes"]


def test_slow_downloads(start_mock):
    downloads = DownloadFaults(slow_probability=1, bytes_per_second=300_000)
    mock = start_mock(with_faults(downloads=downloads))
    with client(mock) as c:
        url, size = download_url(c)
        started = time.monotonic()
        body = c.get(url).content
        elapsed = time.monotonic() - started
    assert len(body) == size
    assert elapsed >= (size - CHUNK) / 300_000 * 0.9  # the first chunk goes out at once
    assert mock.stats()["downloads_completed"] == 1


def test_truncated_downloads_abort(start_mock):
    downloads = DownloadFaults(truncate_probability=1, truncate_fraction=0.5)
    mock = start_mock(with_faults(downloads=downloads))
    with client(mock) as c:
        url, size = download_url(c)
        received = bytearray()
        with pytest.raises(httpx.RemoteProtocolError), c.stream("GET", url) as response:
            assert response.headers["content-length"] == str(size)
            for chunk in response.iter_bytes():
                received += chunk
    assert 0 < len(received) <= size // 2 + 1
    stats = mock.stats()
    assert stats["downloads_truncated"] == 1
    assert stats["downloads_completed"] == 0


def test_truncated_downloads_short(start_mock):
    downloads = DownloadFaults(
        truncate_probability=1, truncate_mode="short", truncate_fraction=0.25
    )
    mock = start_mock(with_faults(downloads=downloads))
    with client(mock) as c:
        url, size = download_url(c)
        response = c.get(url)
    assert response.status_code == 200
    assert len(response.content) == int(size * 0.25)  # looks complete; only `bytes` tells


def test_expired_download_urls(start_mock):
    mock = start_mock(with_faults(downloads=DownloadFaults(expired_probability=1)))
    with client(mock) as c:
        url, _ = download_url(c)
        response = c.get(url)
    assert response.status_code == 403
    assert b"<Code>AccessDenied</Code>" in response.content
    assert mock.stats()["faults"] == {"expired": 1}


# --- reproducibility -----------------------------------------------------------------------

CHAOS: dict[str, Any] = {
    "generation_seconds": 5,
    "generation_jitter": 2,
    "faults": {
        "rate_limit": {"probability": 0.3},
        "server_errors": {"create": 0.1, "query": 0.2, "retrieve": 0.2},
        "codes": [{"code": 1041, "probability": 0.1, "endpoints": ["create"]}],
        "tasks": {"fail_probability": 0.3, "slow_probability": 0.2},
        "sensitive": {"output_probability": 0.2},
        "callbacks": {"drop": 0.5, "duplicate": 0.5, "reorder": 0.5, "delay": 0.5},
        "challenge": {"probability": 0.5},
    },
}


def scenario(mock, clock, *, extra_queries: bool) -> list[Any]:
    """A fixed script of requests; returns everything observable about the outcome."""
    outcome: list[Any] = []
    with client(mock) as c:
        for i in range(30):
            response = create(c, prompt=f"take {i}")
            outcome.append((response.status_code, response.text))
            if extra_queries and response.status_code == 200 and code_of(response) == 0:
                query(c, response.json()["task_id"])
        clock.advance(3600)
        for task in mock.tasks():
            outcome.append(
                (task["task_id"], task["status"], task["planned"], task["history"][-1]["at"])
            )
            response = c.get("/v1/query/video_generation", params={"task_id": task["task_id"]})
            outcome.append((response.status_code, response.text))
    return outcome


def test_same_seed_same_everything(start_mock):
    from mock_server import ManualClock

    runs = []
    for _ in range(2):
        clock = ManualClock()
        mock = start_mock(config_from_dict({**CHAOS, "seed": 1234}), clock=clock)
        runs.append(scenario(mock, clock, extra_queries=False))
    assert runs[0] == runs[1]
    clock = ManualClock()
    other = start_mock(config_from_dict({**CHAOS, "seed": 4321}), clock=clock)
    assert scenario(other, clock, extra_queries=False) != runs[0]


def test_task_fates_do_not_depend_on_interleaved_queries(start_mock):
    from mock_server import ManualClock

    config = {**CHAOS, "seed": 99}
    config["faults"] = {k: v for k, v in CHAOS["faults"].items() if k not in ("server_errors",)}
    fates = []
    for extra in (False, True):
        clock = ManualClock()
        mock = start_mock(config_from_dict(config), clock=clock)
        scenario(mock, clock, extra_queries=extra)
        fates.append([(t["task_id"], t["planned"]) for t in mock.tasks()])
    assert fates[0] == fates[1]
    assert len(fates[0]) > 5


def without_ids(outcome: list[Any], ids: list[str]) -> str:
    text = json.dumps(outcome)
    for index, task_id in enumerate(ids):
        text = text.replace(task_id, f"<task {index}>")
    return text


def test_reset_replays_the_same_seeded_run_with_new_ids(start_mock):
    from mock_server import ManualClock

    clock = ManualClock()
    mock = start_mock(config_from_dict({**CHAOS, "seed": 5}), clock=clock)
    first = scenario(mock, clock, extra_queries=False)
    first_ids = [t["task_id"] for t in mock.tasks()]
    first_files = [t["file_id"] for t in mock.tasks() if t["file_id"]]
    mock.reset()
    clock.set(clock() - 3600)
    second = scenario(mock, clock, extra_queries=False)
    second_ids = [t["task_id"] for t in mock.tasks()]
    second_files = [t["file_id"] for t in mock.tasks() if t["file_id"]]
    # the same seeded faults and fates, but ids are never handed out twice
    assert not set(first_ids) & set(second_ids)
    assert not set(first_files) & set(second_files)
    assert min(second_ids) > max(first_ids)
    assert without_ids(second, second_ids + second_files) == without_ids(
        first, first_ids + first_files
    )
