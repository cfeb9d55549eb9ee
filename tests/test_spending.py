"""What a plan spends: tasks_to_create, the spending guard (run --max-tasks / MMGEN_MAX_TASKS),
request snapshots and their field diff, the price table."""

from __future__ import annotations

import base64
import hashlib
import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from mmgen.cli import main
from mmgen.errors import UsageError
from mmgen.jobfile.spec import JobSpec
from mmgen.state.changes import MISSING, FieldChange, diff_requests, request_snapshot
from mmgen.state.planning import PlanItem
from mmgen.state.pricing import (
    enforce_max_tasks,
    estimate,
    load_prices,
    plan_exit_code,
    tasks_to_create,
)
from mmgen.state.records import Record

FACE = Path(__file__).resolve().parent.parent / "specs" / "images" / "face.png"
JOB = """\
name: {name}
model: S2V-01
prompt: {name} waves.
subject_reference:
  - type: character
    image: [images/face.png]
"""


def _job(name: str, **body: object) -> JobSpec:
    return JobSpec(
        name=name,
        file=f"{name}.yaml",
        line=1,
        body={"model": "S2V-01", **body},
        spec_hash=name * 4,
        output=f"{name}.mp4",
    )


def _items(*actions: str) -> list[PlanItem]:
    return [PlanItem(_job(f"j{i}"), action, "why") for i, action in enumerate(actions)]  # type: ignore[arg-type]


def test_tasks_to_create_counts_submit_and_changed() -> None:
    items = _items("submit", "skip", "resume", "changed", "unknown", "submit")
    assert [i.job.name for i in tasks_to_create(items)] == ["j0", "j3", "j5"]
    with_unknown = tasks_to_create(items, resubmit_unknown=True)
    assert [i.job.name for i in with_unknown] == ["j0", "j3", "j4", "j5"]


def test_plan_exit_code() -> None:
    assert plan_exit_code(_items("skip", "skip")) == 0
    assert plan_exit_code([]) == 0
    for action in ("submit", "changed", "resume", "unknown"):
        assert plan_exit_code(_items("skip", action)) == 3


def test_enforce_max_tasks() -> None:
    items = _items("submit", "changed", "skip")
    assert enforce_max_tasks(items, None) == 2
    assert enforce_max_tasks(items, 2) == 2
    with pytest.raises(UsageError) as caught:
        enforce_max_tasks(items, 1)
    line = caught.value.one_line()
    assert "would create 2 tasks (j0, j1), more than --max-tasks 1" in line
    assert "nothing was submitted" in line and "--max-tasks 2" in line


def test_estimate_uses_variants_and_defaults() -> None:
    table = load_prices()
    items = [
        PlanItem(_job("a"), "submit", "new"),
        PlanItem(_job("b", model="MiniMax-Hailuo-02"), "changed", "x"),  # 768P, 6 s by default
        PlanItem(_job("c", model="MiniMax-Hailuo-02", resolution="1080P"), "submit", "x"),
        PlanItem(
            _job("d", model="MiniMax-Hailuo-02", resolution="512P", duration=10), "submit", "x"
        ),
        PlanItem(_job("e", model="Future-Model"), "submit", "x"),
        PlanItem(_job("f"), "skip", "done"),
    ]
    cost = estimate(items, table)
    assert cost.per_job == {
        "a": Decimal("0.65"),
        "b": Decimal("0.28"),
        "c": Decimal("0.49"),
        "d": Decimal("0.15"),
        "e": None,
    }
    assert cost.total == Decimal("1.57") and cost.tasks == 5 and cost.unpriced == ["e"]


def test_request_snapshot_hashes_data_urls_only() -> None:
    png = FACE.read_bytes()
    url = "data:image/png;base64," + base64.b64encode(png).decode()
    body: dict[str, Any] = {
        "model": "S2V-01",
        "prompt": "data: is not a data URL without a comma",
        "subject_reference": [{"type": "character", "image": [url]}],
        "first_frame_image": "https://example.org/a.png",
        "n": 3,
    }
    snapshot = request_snapshot(body)
    assert snapshot["subject_reference"][0]["image"][0] == (
        "sha256:" + hashlib.sha256(png).hexdigest()
    )
    assert snapshot["prompt"] == body["prompt"]
    assert snapshot["first_frame_image"] == "https://example.org/a.png"
    assert snapshot["n"] == 3
    assert body["subject_reference"][0]["image"][0] == url  # not modified


def test_diff_requests() -> None:
    old = {"model": "S2V-01", "prompt": "a", "duration": 6, "callback_url": "http://x/cb"}
    new = {"model": "S2V-01", "prompt": "b", "resolution": "768P", "duration": 6.0}
    assert diff_requests(old, new) == [
        FieldChange("prompt", "a", "b"),
        FieldChange("resolution", MISSING, "768P"),
        FieldChange("duration", 6, 6.0),
    ]
    assert diff_requests(old, dict(old)) == []
    assert [c.field for c in diff_requests({"callback_url": "a"}, {"callback_url": "b"})] == [
        "callback_url"
    ]  # the job's own callback_url is a field like any other


# --- run --max-tasks through the CLI ----------------------------------------------------------


@pytest.fixture
def specs(tmp_path: Path) -> Path:
    folder = tmp_path / "specs"
    (folder / "images").mkdir(parents=True)
    shutil.copy(FACE, folder / "images" / "face.png")
    for name in ("one", "two", "three"):
        (folder / f"{name}.yaml").write_text(JOB.format(name=name))
    return folder


def _run(*args: str, env: dict[str, str | None] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("how", ["option", "env"])
def test_max_tasks_refuses_before_submitting(
    specs: Path, tmp_path: Path, how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("the run started")

    # the guard runs under the out dir's lock, after planning and before any job starts
    monkeypatch.setattr("mmgen.run.runner.Runner.run", no_run)
    out = tmp_path / "out"
    args = ["run", "--mock", str(specs), "--out", str(out)]
    env: dict[str, str | None] = {"MMGEN_MAX_TASKS": None}
    if how == "option":
        args += ["--max-tasks", "2"]
    else:
        env["MMGEN_MAX_TASKS"] = "2"
    code, stdout, stderr = _run(*args, env=env)
    assert code == 2
    assert "this run would create 3 tasks (one, three, two), more than --max-tasks 2" in stderr
    assert "nothing was submitted" in stderr and "--max-tasks 3" in stderr
    assert len(stderr.splitlines()) == 1 and stdout == ""
    assert not (out / "records.jsonl").exists()


def test_max_tasks_allows_a_run_within_it_and_counts_only_new_tasks(
    specs: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    config = tmp_path / "mock.yaml"
    config.write_text("generation_seconds: 0.2\n")
    env: dict[str, str | None] = {"MMGEN_MAX_TASKS": None}
    run = ["-q", "run", "--mock", "--mock-config", str(config), str(specs), "--out", str(out)]
    code, _, err = _run(*run, "--max-tasks", "3", env=env)
    assert code == 0, err
    # everything done: 0 tasks to create, so even --max-tasks 0 lets the run through
    code, _, err = _run(*run, "--max-tasks", "0", env=env)
    assert code == 0, err
    (specs / "two.yaml").write_text(JOB.format(name="two").replace("waves", "jumps"))
    code, _, err = _run(*run, "--max-tasks", "0", env=env)
    assert code == 2 and "would create 1 task (two)" in err


def test_max_tasks_rejects_a_bad_value(specs: Path) -> None:
    code, _, err = _run("run", "--mock", str(specs), env={"MMGEN_MAX_TASKS": "lots"})
    assert code == 2 and "max-tasks" in err.lower()
    code, _, err = _run("run", "--mock", str(specs), "--max-tasks", "-1")
    assert code == 2


def test_max_tasks_counts_unknown_only_with_resubmit_unknown(tmp_path: Path) -> None:
    items = [PlanItem(_job("u"), "unknown", "interrupted", Record("u", "u.yaml", "h", "unknown"))]
    assert enforce_max_tasks(items, 0) == 0
    with pytest.raises(UsageError):
        enforce_max_tasks(items, 0, resubmit_unknown=True)
