"""`mmgen init`: the scaffold is a working project, and init never overwrites anything."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from mmgen import __version__
from mmgen.cli import main
from mmgen.project.scaffold import scaffold_files
from mmgen.schemas import bundled_schema
from mmgen.state.journal import RecordStore

ROOT = Path(__file__).resolve().parent.parent
EXPECTED = [
    "specs/example.yaml",
    "specs/images/face.png",
    ".github/workflows/mmgen.yml",
    ".pre-commit-config.yaml",
    "job.schema.json",
    ".vscode/settings.json",
    "mmgen-out/.gitignore",
    "mmgen-out/.gitattributes",
]


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), env={"MINIMAX_API_KEY": None})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def project(tmp_path: Path) -> Path:
    code, out, err = run("init", str(tmp_path / "project"))
    assert code == 0, err
    assert [line.split()[0] for line in out.splitlines()[: len(EXPECTED)]] == [
        str(tmp_path / "project" / name) for name in EXPECTED
    ]
    return tmp_path / "project"


def test_init_writes_every_file(project: Path) -> None:
    assert sorted(str(p.relative_to(project)) for p in project.rglob("*") if p.is_file()) == sorted(
        EXPECTED
    )
    assert (project / "specs/images/face.png").read_bytes() == (
        ROOT / "specs/images/face.png"
    ).read_bytes()
    assert json.loads((project / "job.schema.json").read_text()) == bundled_schema()
    settings = json.loads((project / ".vscode/settings.json").read_text())
    assert settings == {
        "yaml.schemas": {"./job.schema.json": ["specs/**/*.yaml", "specs/**/*.yml"]}
    }
    assert "$schema=../job.schema.json" in (project / "specs/example.yaml").read_text()


def test_scaffold_validates_and_runs_on_the_mock(project: Path, tmp_path: Path) -> None:
    assert run("validate", str(project / "specs")) == (0, "1 file, 1 job: ok\n", "")
    out = tmp_path / "out"
    code, _, err = run("-q", "run", "--mock", str(project / "specs"), "--out", str(out))
    assert code == 0, err
    (record,) = RecordStore(out).current()
    assert record.job == "example" and record.state == "success"
    assert (out / str(record.video)).stat().st_size > 1000
    assert (out / "index.html").is_file()


def test_a_rehearsal_keeps_its_state_apart_and_out_of_git(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """init -> run --mock -> commit: the commit carries no mock records (they would make the
    first real run resume tasks MiniMax never had); the run's last line says where to look."""
    monkeypatch.chdir(project)
    fast = project.parent / "fast-mock.yaml"
    fast.write_text("generation_seconds: 0\n")
    code, _, err = run("run", "--mock", "--mock-config", str(fast), "specs")
    assert code == 0, err
    assert err.splitlines()[-1] == (
        "mmgen: videos and records in mmgen-mock-out/, gallery mmgen-mock-out/index.html"
    )
    (record,) = RecordStore(Path("mmgen-mock-out")).current()
    assert record.state == "success"
    video = Path("mmgen-mock-out", str(record.video))
    assert video.stat().st_mode & 0o777 == 0o644  # like index.html: a served gallery plays it
    assert not Path("mmgen-out/records.jsonl").exists()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    staged = subprocess.run(
        ["git", "diff", "--cached", "--name-only"], capture_output=True, text=True, check=True
    ).stdout.split()
    assert not [name for name in staged if "mock" in name], staged
    # an explicit --out still wins
    code, _, err = run("-q", "run", "--mock", "--mock-config", str(fast), "specs", "--out", "else")
    assert code == 0 and RecordStore(Path("else")).current()[0].state == "success"


def test_scaffold_plan_comment_prices_the_example(project: Path, tmp_path: Path) -> None:
    code, md, _ = run(
        "plan", str(project / "specs"), "--out", str(tmp_path / "o"), "--format", "markdown"
    )
    assert code == 0 and "| `example` | submit | new job | S2V-01 | $0.65 |" in md


def _steps(job: dict[str, object]) -> list[dict[str, object]]:
    steps = job["steps"]
    assert isinstance(steps, list)
    return steps


def _runs(job: dict[str, object]) -> str:
    return "\n".join(str(step.get("run", "")) for step in _steps(job))


def test_workflow_has_the_jobs_it_claims(project: Path) -> None:
    workflow = yaml.safe_load((project / ".github/workflows/mmgen.yml").read_text())
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads `on` as true
    assert "pull_request" in triggers and triggers["push"]["branches"] == ["main"]
    # the exact version, by the distribution's name: PyPI's `mmgen` is OpenMMLab's MMGeneration
    assert workflow["env"]["MMGEN_INSTALL"] == f"mmgen-minimax=={__version__}"
    jobs = workflow["jobs"]
    assert set(jobs) == {"validate", "plan", "run", "preview"}

    assert "mmgen validate specs/ --format github" in _runs(jobs["validate"])

    plan = jobs["plan"]
    assert plan["if"] == "github.event_name == 'pull_request'"
    assert plan["needs"] == "validate" and plan["permissions"]["pull-requests"] == "write"
    assert "--format markdown --detailed-exitcode > plan.md" in _runs(plan)
    assert "gh pr comment" in _runs(plan) and "--body-file plan.md" in _runs(plan)

    job = jobs["run"]
    assert "refs/heads/main" in job["if"] and job["permissions"]["contents"] == "write"
    assert int(job["env"]["MMGEN_MAX_TASKS"]) > 0
    assert 'mmgen run specs/ --out "$MMGEN_OUT"' in _runs(job)
    assert 'git add -f "$MMGEN_OUT/records.jsonl"' in _runs(job) and "git push" in _runs(job)
    uses = [str(step.get("uses", "")) for step in _steps(job)]
    assert "actions/upload-artifact@v4" in uses and "actions/cache/restore@v4" in uses
    for step in _steps(job)[-3:]:  # records, cache, artifact: kept even when a job failed
        assert str(step["if"]).startswith("always()")
    # with a team store (MMGEN_STORE) the state lives there: no cache, no records commit
    assert workflow["env"]["MMGEN_OUT"] == "${{ vars.MMGEN_STORE || 'mmgen-out' }}"
    for step in _steps(job):
        if "actions/cache" in str(step.get("uses")) or "git push" in str(step.get("run")):
            assert "vars.MMGEN_STORE == ''" in str(step["if"]), step
    # storage credentials only where the store is read or written, never beside pip install
    for name, each in jobs.items():
        assert "AWS_SECRET_ACCESS_KEY" not in str(each.get("env", {})), name
        for step in _steps(each):
            if "AWS_SECRET_ACCESS_KEY" in str(step.get("env", {})):
                assert str(step["run"]).startswith(("mmgen run ", "set +e\nmmgen plan ")), step

    # opt-in previews: a labelled pull request, the team's store, a small spending guard
    preview = jobs["preview"]
    assert "mmgen-preview" in preview["if"] and "vars.MMGEN_STORE" in preview["if"]
    assert preview["env"]["MMGEN_OUT"] == "${{ vars.MMGEN_STORE }}"
    assert int(preview["env"]["MMGEN_MAX_TASKS"]) > 0
    assert 'mmgen run specs/ --preview --out "$MMGEN_OUT"' in _runs(preview)
    assert "gh pr comment" in _runs(preview)
    assert "labeled" in triggers["pull_request"]["types"]


def test_pre_commit_config_runs_mmgen_validate(project: Path) -> None:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PRE_COMMIT_HOME": str(project.parent / "pre-commit-home"),
    }
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run([*git, "init", "-q"], cwd=project, check=True)
    subprocess.run([*git, "add", "."], cwd=project, check=True)
    pre_commit = [sys.executable, "-m", "pre_commit"]
    checked = subprocess.run(
        [*pre_commit, "validate-config", ".pre-commit-config.yaml"], cwd=project, env=env
    )
    assert checked.returncode == 0
    ran = subprocess.run(
        [*pre_commit, "run", "--all-files"], cwd=project, env=env, capture_output=True, text=True
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "mmgen validate" in ran.stdout and "Passed" in ran.stdout
    (project / "specs/example.yaml").write_text("name: example\nmodel: S2V-01\npromt: x\n")
    ran = subprocess.run(
        [*pre_commit, "run", "--all-files"], cwd=project, env=env, capture_output=True, text=True
    )
    assert ran.returncode == 1 and "specs/example.yaml:3:1: promt" in ran.stdout
    # the same job name in two files is found only when one process sees both: pre-commit
    # splits the files across processes (4 at least per process, one process per CPU) unless
    # the hook has require_serial; here a.yaml and e.yaml land in different processes
    example = project / "specs/example.yaml"
    example.write_text(scaffold_files()[0].content.decode())
    for name in ("a", "b", "c", "d", "e"):
        job = "a" if name == "e" else name
        text = example.read_text().replace("name: example", f"name: {job}")
        (project / f"specs/{name}.yaml").write_text(text)
    subprocess.run([*git, "add", "."], cwd=project, check=True)
    ran = subprocess.run(
        [*pre_commit, "run", "--all-files"], cwd=project, env=env, capture_output=True, text=True
    )
    assert ran.returncode == 1, ran.stdout
    assert re.search(r"specs/[ae]\.yaml:\d+:\d+: .*\ba\b", ran.stdout), ran.stdout


def test_init_prints_the_real_next_steps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, _ = run("init", "my videos")
    assert code == 0
    assert out.splitlines()[len(EXPECTED) :] == [
        "Next:",
        "  cd 'my videos'",
        "  mmgen validate specs/ && mmgen run --mock specs/  # offline: mmgen-mock-out/",
        '  git init && git add . && git commit -m "mmgen project"',
        "  then add the repository secret MINIMAX_API_KEY (GitHub: Settings > Secrets)",
    ]
    # here, in a repository already: no `cd .`, no `git init`
    (tmp_path / "repo").mkdir()
    subprocess.run(["git", "init", "-q"], cwd=tmp_path / "repo", check=True)
    monkeypatch.chdir(tmp_path / "repo")
    code, out, _ = run("init")
    assert code == 0
    assert out.splitlines()[len(EXPECTED) + 1 : -1] == [
        "  mmgen validate specs/ && mmgen run --mock specs/  # offline: mmgen-mock-out/",
        '  git add . && git commit -m "mmgen project"',
    ]


def test_init_refuses_to_overwrite_and_writes_nothing(tmp_path: Path) -> None:
    target = tmp_path / "project"
    (target / "specs").mkdir(parents=True)
    (target / "specs/example.yaml").write_text("mine\n")
    (target / ".pre-commit-config.yaml").write_text("repos: []\n")
    code, out, err = run("init", str(target))
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1
    assert "2 of the files `mmgen init` writes already exist" in err
    assert "specs/example.yaml, .pre-commit-config.yaml; nothing was written" in err
    assert (target / "specs/example.yaml").read_text() == "mine\n"
    assert sorted(p.name for p in target.rglob("*")) == [
        ".pre-commit-config.yaml",
        "example.yaml",
        "specs",
    ]


def test_init_defaults_to_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert run("init")[0] == 0
    assert (tmp_path / ".github/workflows/mmgen.yml").is_file()
    code, _, err = run("init")
    assert code == 2 and "8 of the files" in err


def test_init_into_a_file_is_a_usage_error(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    code, _, err = run("init", str(target))
    assert code == 2 and "Traceback" not in err


def test_scaffold_file_list_is_the_documented_one() -> None:
    assert [f.path for f in scaffold_files()] == EXPECTED
    assert shutil.which("git") is not None  # the pre-commit test above needs it
