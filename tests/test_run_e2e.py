"""`mmgen run` end to end against the real mock server on loopback.

The CLI runs in-process (click's CliRunner) with ``--base-url`` pointing at a mock served in a
thread; callbacks reach this run's listener because the mock is on loopback.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import shutil
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from mmgen.cli import main
from mock_server import MockConfig
from mock_server.config import (
    CallbackFaults,
    CodeFault,
    Faults,
    RateLimitFaults,
    SensitiveFaults,
)
from tests.fakes import write_jobs

REPO = Path(__file__).resolve().parent.parent
KEY = "sk-e2e-test-key"
FAST = ["--poll-interval", "0.2", "--timeout", "60", "--rpm", "0"]


def run(args: list[str], env: dict[str, str | None] | None = None) -> Any:
    result = CliRunner().invoke(
        main, args, env={"MINIMAX_API_KEY": KEY, "MINIMAX_BASE_URL": None, **(env or {})}
    )
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def records(out: Path) -> dict[str, dict[str, Any]]:
    result = run(["status", "--out", str(out), "--format", "json"])
    assert result.exit_code == 0, result.output
    return {r["job"]: r for r in json.loads(result.stdout)}


def served_sha256(mock: Any, file_id: str) -> str:
    """What the mock serves for ``file_id``, fetched the way any API client would."""
    with httpx.Client(trust_env=False, timeout=10) as http:
        info = http.get(
            f"{mock.base_url}/v1/files/retrieve",
            params={"file_id": file_id},
            headers={"Authorization": f"Bearer {KEY}"},
        ).json()
        video = http.get(info["file"]["download_url"])
        video.raise_for_status()
    return hashlib.sha256(video.content).hexdigest()


def test_example_specs_end_to_end_then_nothing_to_do(mock_api: Any, tmp_path: Path) -> None:
    specs = tmp_path / "specs"
    shutil.copytree(REPO / "specs", specs)
    out = tmp_path / "out"
    first = run(["run", str(specs), "--base-url", mock_api.base_url, "--out", str(out), *FAST])
    assert first.exit_code == 0, first.output
    stats = mock_api.stats()
    jobs = records(out)
    assert stats["created"] == len(jobs) >= 5
    for record in jobs.values():
        assert record["state"] == "success"
        video = out / record["video"]
        assert hashlib.sha256(video.read_bytes()).hexdigest() == record["sha256"]
        assert record["sha256"] == served_sha256(mock_api, record["file_id"])
        assert video.stat().st_size == record["bytes"]
        assert record["width"] and record["height"]
    # callbacks really reached this run's listener (challenge answered, updates delivered)
    tasks = mock_api.tasks()
    assert all(t["request"].get("callback_url", "").startswith("http://127.0.0.1:") for t in tasks)
    assert stats["challenges_ok"] == len(jobs) and stats["callbacks_delivered"] >= len(jobs)
    assert (out / "index.html").read_text().count("<video") == len(jobs)

    second = run(["run", str(specs), "--base-url", mock_api.base_url, "--out", str(out), *FAST])
    assert second.exit_code == 0, second.output
    assert mock_api.stats()["created"] == stats["created"]  # a reconcile: nothing resubmitted
    assert "already done" in second.stdout

    plan = run(
        ["plan", str(specs), "--base-url", mock_api.base_url, "--out", str(out), "--format", "json"]
    )
    assert {item["action"] for item in json.loads(plan.stdout)} == {"skip"}


def test_changed_prompt_submits_exactly_one(mock_api: Any, tmp_path: Path) -> None:
    out = tmp_path / "out"
    spec = write_jobs(tmp_path / "specs", {"a": "A cat.", "b": "A dog.", "c": "A cow."})
    assert run(["run", str(spec), "--base-url", mock_api.base_url, "--out", str(out), *FAST])
    assert mock_api.stats()["created"] == 3
    write_jobs(tmp_path / "specs", {"a": "A cat.", "b": "A dog on a skateboard.", "c": "A cow."})
    plan = run(
        ["plan", str(spec), "--base-url", mock_api.base_url, "--out", str(out), "--format", "json"]
    )
    actions = {i["job"]: i["action"] for i in json.loads(plan.stdout)}
    assert actions == {"a": "skip", "b": "changed", "c": "skip"}
    again = run(["run", str(spec), "--base-url", mock_api.base_url, "--out", str(out), *FAST])
    assert again.exit_code == 0, again.output
    assert mock_api.stats()["created"] == 4
    assert mock_api.tasks()[-1]["request"]["prompt"] == "A dog on a skateboard."
    journal = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    assert len({r["spec_hash"] for r in journal if r["job"] == "b"}) == 2  # old record kept


def test_dropped_callbacks_polling_finishes(start_mock: Any, tmp_path: Path) -> None:
    mock = start_mock(
        MockConfig(generation_seconds=0.3, faults=Faults(callbacks=CallbackFaults(drop=1.0)))
    )
    spec = write_jobs(tmp_path / "specs", {"a": "A cat.", "b": "A dog."})
    out = tmp_path / "out"
    result = run(["run", str(spec), "--base-url", mock.base_url, "--out", str(out), *FAST])
    assert result.exit_code == 0, result.output
    assert {r["state"] for r in records(out).values()} == {"success"}
    stats = mock.stats()
    assert stats["challenges_ok"] == 2  # the listener answered; then every update was dropped
    assert stats.get("callbacks_delivered", 0) == 0


def test_duplicated_and_reordered_callbacks_give_one_outcome(
    start_mock: Any, tmp_path: Path
) -> None:
    faults = Faults(callbacks=CallbackFaults(duplicate=1.0, reorder=1.0))
    mock = start_mock(MockConfig(generation_seconds=0.3, seed=7, faults=faults))
    spec = write_jobs(tmp_path / "specs", {"a": "A cat.", "b": "A dog.", "c": "A cow."})
    out = tmp_path / "out"
    result = run(
        ["run", str(spec), "--base-url", mock.base_url, "--out", str(out), "--wait", "callback"]
    )
    assert result.exit_code == 0, result.output
    recs = records(out)
    assert {r["state"] for r in recs.values()} == {"success"}
    assert mock.stats()["created"] == 3
    assert len({r["task_id"] for r in recs.values()}) == 3
    journal = (out / "records.jsonl").read_text().splitlines()
    assert sum('"state":"success"' in line for line in journal) == 3  # one outcome each


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        ({"codes": [CodeFault(code=1004)]}, 1004),
        ({"codes": [CodeFault(code=1008)]}, 1008),
        ({"codes": [CodeFault(code=2013)]}, 2013),
        ({"codes": [CodeFault(code=2049)]}, 2049),
        ({"codes": [CodeFault(code=2056)]}, 2056),
        ({"codes": [CodeFault(code=1042)]}, 1042),
    ],
)
def test_non_retryable_codes_fail_once_per_job(
    start_mock: Any, tmp_path: Path, fault: dict[str, Any], code: int
) -> None:
    mock = start_mock(MockConfig(generation_seconds=0.2, faults=Faults(**fault)))
    spec = write_jobs(tmp_path / "specs", {"a": "A cat.", "b": "A dog."})
    out = tmp_path / "out"
    result = run(["run", str(spec), "--base-url", mock.base_url, "--out", str(out), *FAST])
    assert result.exit_code == 1, result.output
    for record in records(out).values():
        assert record["state"] == "failed"
        assert record["error"]["code"] == code
        assert record["task_id"] is None
    creates = [r for r in mock.requests() if r["endpoint"] == "create"]
    assert len(creates) == 2  # never retried


def test_sensitive_and_failed_jobs_leave_the_others_alone(start_mock: Any, tmp_path: Path) -> None:
    faults = Faults(sensitive=SensitiveFaults(input_words=["forbidden"], output_words=["explodes"]))
    mock = start_mock(MockConfig(generation_seconds=0.3, faults=faults))
    prompts = {
        "ok1": "A cat.",
        "bad-in": "A forbidden scene.",
        "bad-out": "The car explodes.",
        "ok2": "A dog.",
    }
    spec = write_jobs(tmp_path / "specs", prompts)
    out = tmp_path / "out"
    result = run(["run", str(spec), "--base-url", mock.base_url, "--out", str(out), *FAST])
    assert result.exit_code == 1
    recs = records(out)
    assert recs["ok1"]["state"] == recs["ok2"]["state"] == "success"
    assert recs["bad-in"]["state"] == "failed" and recs["bad-in"]["error"]["code"] == 1026
    assert recs["bad-out"]["state"] == "failed" and recs["bad-out"]["error"]["code"] == 1027
    assert recs["bad-out"]["task_id"]  # 1027 comes after generation: the task existed
    assert "sensitive" in result.stdout


def test_balance_runs_out_after_n_tasks(start_mock: Any, tmp_path: Path) -> None:
    from mock_server.config import BalanceFaults

    mock = start_mock(
        MockConfig(generation_seconds=0.2, faults=Faults(balance=BalanceFaults(max_tasks=2)))
    )
    spec = write_jobs(tmp_path / "specs", {"a": "A.", "b": "B.", "c": "C."})
    out = tmp_path / "out"
    result = run(
        ["run", str(spec), "--base-url", mock.base_url, "--out", str(out), "--concurrency=1", *FAST]
    )
    assert result.exit_code == 1
    states = sorted(r["state"] for r in records(out).values())
    assert states == ["failed", "success", "success"]
    failed = [r for r in records(out).values() if r["state"] == "failed"]
    assert failed[0]["error"]["code"] == 1008 and "top up" in failed[0]["error"]["message"]


def test_rate_limit_bursts_still_finish(start_mock: Any, tmp_path: Path) -> None:
    faults = Faults(rate_limit=RateLimitFaults(probability=0.5, endpoints=["create", "query"]))
    mock = start_mock(MockConfig(generation_seconds=0.3, seed=3, faults=faults))
    spec = write_jobs(tmp_path / "specs", {f"j{i}": f"Scene {i}." for i in range(6)})
    out = tmp_path / "out"
    result = run(["run", str(spec), "--base-url", mock.base_url, "--out", str(out), *FAST])
    assert result.exit_code == 0, result.output
    assert mock.stats()["created"] == 6
    assert any(r.get("code") == 1002 for r in mock.requests())


def test_canary_key_never_leaks(
    start_mock: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    canary = "sk-CANARY-7f3a9c-do-not-print"
    mock = start_mock(MockConfig(generation_seconds=0.2, api_key="the-right-key"))
    spec = write_jobs(tmp_path / "specs", {"a": "A cat."})
    out = tmp_path / "out"
    result = run(
        ["-vv", "run", str(spec), "--base-url", mock.base_url, "--out", str(out)],
        env={"MINIMAX_API_KEY": canary},
    )
    assert result.exit_code == 1
    assert records(out)["a"]["error"]["code"] == 2049
    assert canary not in result.output
    assert "2049" in caplog.text or "2049" in result.output
    # -vv: every log line of the run is captured, each request's own among them
    assert any(r.name == "httpx" for r in caplog.records) and canary not in caplog.text
    for path in out.rglob("*"):
        if path.is_file():
            assert canary.encode() not in path.read_bytes(), path

    # and the whole happy path, with the canary as the right key
    right = start_mock(MockConfig(generation_seconds=0.2, api_key=canary))
    caplog.clear()
    result = run(
        ["-vv", "run", str(spec), "--base-url", right.base_url, "--out", str(out), *FAST],
        env={"MINIMAX_API_KEY": canary},
    )
    assert result.exit_code == 0, result.output
    assert canary not in result.output and canary not in caplog.text
    for path in out.rglob("*"):
        if path.is_file():
            assert canary.encode() not in path.read_bytes(), path


def test_run_mock_in_process_uses_callbacks(tmp_path: Path) -> None:
    spec = write_jobs(tmp_path / "specs", {"a": "A cat.", "b": "A dog."})
    out = tmp_path / "out"
    result = run(
        ["run", "--mock", str(spec), "--out", str(out), "--format", "json"],
        env={"MINIMAX_API_KEY": None},
    )
    assert result.exit_code == 0, result.output
    outcomes = json.loads(result.stdout)
    assert [o["state"] for o in outcomes] == ["success", "success"]
    assert all(o["ok"] and o["action"] == "submit" for o in outcomes)


def test_a_run_changes_no_process_wide_setting(tmp_path: Path, mock_api: Any) -> None:
    """``execute`` is a library call: the garbage collector (thresholds, frozen objects), the
    thread switch interval and the SIGTERM handler are the host program's, during the run and
    after it."""
    import gc
    import signal

    from mmgen.jobfile.spec import load_jobs
    from mmgen.run.execute import RunSettings, Target, execute
    from mmgen.run.runner import RunConfig

    def settings() -> tuple[Any, ...]:
        return (
            gc.get_threshold(),
            gc.get_freeze_count(),
            gc.isenabled(),
            sys.getswitchinterval(),
            signal.getsignal(signal.SIGTERM),
        )

    before = settings()
    during: list[tuple[Any, ...]] = []
    spec = write_jobs(tmp_path / "specs", {"a": "A cat."})
    run_settings = RunSettings(
        RunConfig(out_dir=tmp_path / "out", poll_interval=0.05, timeout=60), rpm=0
    )
    target = Target(mock_api.base_url, "sk-process-wide")
    result = asyncio.run(
        execute(
            load_jobs([spec]), target, run_settings, on_event=lambda _e: during.append(settings())
        )
    )
    assert result.exit_code == 0
    assert during and set(during) == {before}
    assert settings() == before


def test_bad_input_exits_2_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nmodel: S2V-01\nprompt: [unclosed\n")
    result = run(["run", "--mock", str(bad), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert "bad.yaml:" in result.output
    assert not (tmp_path / "out").exists()

    result = run(["run", str(bad), "--concurrency", "0"])
    assert result.exit_code == 2 and "'--concurrency': 0 is not in the range x>=1" in result.output
    result = run(["run", str(bad), "--listen", "nope"])
    assert result.exit_code == 2 and "HOST:PORT" in result.output


def test_no_key_against_the_real_api_is_a_usage_error(tmp_path: Path) -> None:
    spec = write_jobs(tmp_path / "specs", {"a": "A cat."})
    result = run(
        ["run", str(spec), "--out", str(tmp_path / "out"), "--wait", "poll"],
        env={"MINIMAX_API_KEY": None},
    )
    assert result.exit_code == 2
    assert "MINIMAX_API_KEY" in result.output


def test_run_mock_with_a_fault_config(tmp_path: Path) -> None:
    config = tmp_path / "mock.yaml"
    config.write_text("generation_seconds: 0.3\nfaults:\n  tasks: {fail_probability: 1.0}\n")
    spec = write_jobs(tmp_path / "specs", {"a": "A cat."})
    out = tmp_path / "out"
    result = run(["run", "--mock", "--mock-config", str(config), str(spec), "--out", str(out)])
    assert result.exit_code == 1
    assert records(out)["a"]["error"]["code"] == "task_failed"
    config.write_text("faults: {nope: 1}\n")
    result = run(["run", "--mock", "--mock-config", str(config), str(spec), "--out", str(out)])
    assert result.exit_code == 2 and "mock.yaml:1:10: faults.nope: unknown key" in result.output
    result = run(["run", "--mock-config", str(config), str(spec), "--out", str(out)])
    assert result.exit_code == 2 and "needs --mock" in result.output


def test_chaos_every_job_still_finishes_once(start_mock: Any, tmp_path: Path) -> None:
    """Flaky everything except what could create a task twice: each job ends with the video the
    mock served, and each task was created exactly once."""
    from mock_server.config import (
        ChallengeFaults,
        DownloadFaults,
        DropFaults,
        ServerErrorFaults,
    )

    faults = Faults(
        # odds chosen so that a job is lost to bad luck about once in 3,000 (8 jobs: 1 run in
        # 400): creates give up after 6 tries; a round (fresh URL: 3 retrieve tries, then 3
        # download tries) fails ~13% of the time and a job only when 4 rounds in a row fail
        rate_limit=RateLimitFaults(probability=0.1, endpoints=["create", "query"]),
        # (a create answered by a gateway's 5xx may have made its task: never resent, it is
        # adopted from its pushes or left unknown; tests/test_run_faults_engine.py)
        server_errors=ServerErrorFaults(query=0.2, retrieve=0.1, download=0.05),
        drops=DropFaults(query=0.2, retrieve=0.1, download=0.05),
        callbacks=CallbackFaults(drop=0.3, duplicate=0.3, reorder=0.3, delay=0.3, delay_seconds=1),
        challenge=ChallengeFaults(probability=0.3),
        downloads=DownloadFaults(truncate_probability=0.1, expired_probability=0.1),
    )
    mock = start_mock(MockConfig(generation_seconds=0.5, seed=2024, faults=faults))
    jobs = {f"j{i}": f"Scene {i}." for i in range(8)}
    spec = write_jobs(tmp_path / "specs", jobs)
    out = tmp_path / "out"
    result = run(["run", str(spec), "--base-url", mock.base_url, "--out", str(out), *FAST])
    assert result.exit_code == 0, result.output
    stats = mock.stats()
    assert stats["created"] == len(jobs)
    assert sum(stats["faults"].values()) > 5  # the faults did fire
    mock.app.state.mock.config.faults.__dict__.update(Faults().__dict__)  # calm, to check
    for record in records(out).values():
        assert record["state"] == "success"
        assert record["sha256"] == served_sha256(mock, record["file_id"])


def test_dropped_create_is_unknown_and_never_resubmitted_silently(
    start_mock: Any, tmp_path: Path
) -> None:
    from mock_server.config import DropFaults

    faults = Faults(drops=DropFaults(create=1.0, create_commits=True))
    mock = start_mock(MockConfig(generation_seconds=0.2, faults=faults))
    spec = write_jobs(tmp_path / "specs", {"a": "A cat."})
    out = tmp_path / "out"
    # without callbacks nothing can name the task the lost answer was about
    args = ["run", str(spec), "--base-url", mock.base_url, "--out", str(out), "--wait", "poll"]
    args += FAST
    first = run(args)
    assert first.exit_code == 1
    assert records(out)["a"]["state"] == "unknown"
    assert mock.stats()["created"] == 1  # the task exists although the answer was lost
    second = run(args)
    assert second.exit_code == 1 and "--resubmit-unknown" in second.stdout
    assert mock.stats()["created"] == 1  # not paid for twice
    mock.app.state.mock.config.faults.drops.create = 0.0
    third = run([*args, "--resubmit-unknown"])
    assert third.exit_code == 0, third.output
    assert mock.stats()["created"] == 2  # only because the user said so
    assert records(out)["a"]["state"] == "success"
