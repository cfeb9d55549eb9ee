"""A model mmgen does not know, declared by a project file (``mmgen.yaml`` or ``--models``):
validate, plan (priced by ``--prices``) and run accept its jobs; its rules are checked like a
known model's; an undeclared unknown model stays an error with "did you mean".

``tests/model_project/`` is the project: ``mmgen.yaml``, ``specs/`` (valid jobs) and
``bad-specs.yaml`` with its expected problems in ``bad-specs.expected``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from mmgen.cli import main
from mmgen.jobfile.spec import load_jobs, validate_paths
from mmgen.state.journal import RecordStore
from tests.fakes import FakeClient
from tests.test_runner_unit import run_jobs

PROJECT = Path(__file__).resolve().parent / "model_project"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.stdout, result.stderr


def test_declared_model_jobs_are_valid() -> None:
    result = validate_paths([PROJECT / "specs"])
    assert result.problems == [] and result.warnings == []
    jobs = {job.name: job for job in result.jobs}
    assert jobs["sound"].body == {
        "model": "MiniMax-Hailuo-3",
        "prompt": "A fox runs through the snow. [Tracking shot]",
        "audio": True,
        "duration": 10,
    }
    # a declared image field is checked and sent as a data URL, like a known model's
    assert jobs["first-frame"].body["first_frame_image"].startswith("data:image/png;base64,")


def test_declared_model_rules_are_checked_with_the_usual_messages() -> None:
    case = PROJECT / "bad-specs.yaml"
    result = validate_paths([case])
    expected = (PROJECT / "bad-specs.expected").read_text(encoding="utf-8").splitlines()
    assert [str(p).removeprefix(f"{case}:") for p in result.problems] == expected
    assert result.jobs == []


def test_without_the_project_file_the_model_is_unknown(tmp_path: Path) -> None:
    specs = tmp_path / "specs"
    shutil.copytree(PROJECT / "specs", specs)
    (specs / "new-model.yaml").write_text(
        (specs / "new-model.yaml")
        .read_text()
        .replace("../../../specs/", str(PROJECT.parents[1]) + "/specs/")
    )
    code, out, _ = run("validate", str(specs))
    assert code == 2
    assert "'MiniMax-Hailuo-3' is not a known model; did you mean 'MiniMax-Hailuo-2.3'?" in out
    assert "declare a newer one in mmgen.yaml" in out
    # --models names a project file anywhere
    code, out, _ = run("validate", "--models", str(PROJECT / "mmgen.yaml"), str(specs))
    assert (code, out) == (0, "1 file, 3 jobs: ok\n")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("models:\n  S2V-01: {fields: {}}\n", "2:3: models.S2V-01: S2V-01 is a model mmgen knows"),
        (
            "models:\n  X:\n    fields: {hero: {type: image}}\n",
            "3:14: models.X.fields.hero: an image field is first_frame_image or last_frame_image",
        ),
        (
            "models:\n  X:\n    fields: {dur: {type: int}}\n",
            "3:26: models.X.fields.dur.type: 'int' is not one of: string, integer",
        ),
        (
            "models:\n  X:\n    feilds: {}\n",
            "3:5: models.X.feilds: unknown key; did you mean 'fields'?",
        ),
    ],
)
def test_a_bad_project_file_is_located(tmp_path: Path, content: str, expected: str) -> None:
    project = tmp_path / "mmgen.yaml"
    project.write_text(content)
    (tmp_path / "job.yaml").write_text("name: a\nmodel: T2V-01\nprompt: A cat.\n")
    code, out, _ = run("validate", str(tmp_path))
    assert code == 2
    assert out.startswith(f"{project}:{expected}"), out
    assert "job.yaml" not in out  # the project file is not a job file


def test_plan_prices_a_declared_model_from_prices(tmp_path: Path) -> None:
    prices = tmp_path / "prices.yaml"
    prices.write_text("models:\n  MiniMax-Hailuo-3: {price: 0.40}\n")
    specs = str(PROJECT / "specs")
    out_dir = str(tmp_path / "out")
    code, out, _ = run("plan", specs, "--out", out_dir, "--prices", str(prices))
    assert code == 0
    rows = {line.split()[0]: line.split() for line in out.splitlines()[2:5]}
    assert rows["sound"][1:] == ["submit", "new", "job", "$0.40"]
    code, md, _ = run(
        "plan", specs, "--out", out_dir, "--prices", str(prices), "--format", "markdown"
    )
    assert code == 0 and "| `sound` | submit | new job | MiniMax-Hailuo-3 | $0.40 |" in md


@pytest.mark.anyio
async def test_run_submits_a_declared_model_job(tmp_path: Path) -> None:
    jobs = [job for job in load_jobs([PROJECT / "specs"]) if job.name == "sound"]
    client = FakeClient()
    result, items, _ = await run_jobs(tmp_path, client, jobs)
    assert result.ok and [item.action for item in items] == ["submit"]
    [body] = client.created
    assert body["model"] == "MiniMax-Hailuo-3" and body["audio"] is True
    assert RecordStore(tmp_path).get("sound", jobs[0].spec_hash).state == "success"


def test_a_project_file_given_as_a_path_is_checked_not_read_as_jobs(tmp_path: Path) -> None:
    project = tmp_path / "specs" / "mmgen.yaml"
    project.parent.mkdir()
    project.write_text("models:\n  X:\n    feilds: {}\n")
    code, out, _ = run("validate", str(project))  # as pre-commit passes a changed file
    assert code == 2
    assert out == f"{project}:3:5: models.X.feilds: unknown key; did you mean 'fields'?\n"
    code, out, _ = run("validate", str(PROJECT / "mmgen.yaml"))
    assert (code, out) == (0, "0 files, 0 jobs: ok\n")


def test_run_takes_the_project_file_from_models(tmp_path: Path) -> None:
    """`run --models FILE` reads the declared models as validate and plan do: without it the
    job is refused as an unknown model; with it the run gets as far as its spending guard."""
    specs = tmp_path / "specs"
    shutil.copytree(PROJECT / "specs", specs)
    (specs / "new-model.yaml").write_text(
        (specs / "new-model.yaml")
        .read_text()
        .replace("../../../specs/", str(PROJECT.parents[1]) + "/specs/")
    )
    common = [
        "--out",
        str(tmp_path / "out"),
        "--base-url",
        "http://127.0.0.1:9",
        "--max-tasks",
        "0",
    ]
    env = {"MINIMAX_API_KEY": "test-key"}
    result = CliRunner().invoke(main, ["run", *common, str(specs)], env=env)
    assert result.exit_code == 2
    assert "'MiniMax-Hailuo-3' is not a known model" in result.output
    models = ["--models", str(PROJECT / "mmgen.yaml")]
    result = CliRunner().invoke(main, ["run", *models, *common, str(specs)], env=env)
    assert result.exit_code == 2, result.output
    assert "not a known model" not in result.output
    assert "--max-tasks" in result.output
