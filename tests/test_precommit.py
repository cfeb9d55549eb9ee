"""The `mmgen-validate` hook of .pre-commit-hooks.yaml, run by pre-commit itself.

`pre-commit try-repo` installs mmgen from a git repository (a copy of this checkout, committed
in tmp_path) into its own virtualenv, as a user's pre-commit would; that install is a wheel
It installs from PyPI: slow (about 30 s), still well under a minute.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ["pyproject.toml", "README.md", ".pre-commit-hooks.yaml", "mmgen", "mock_server",
           "schemas", "specs/images/face.png"]  # fmt: skip
GOOD = """\
name: hello
model: S2V-01
prompt: Hello.
subject_reference:
  - type: character
    image: [https://example.org/face.jpg]
"""

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed"),
]


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


def _hook_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "mmgen-repo"
    for name in SHIPPED:
        source, target = ROOT / name, repo / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, target)
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "mmgen")
    return repo


def _pre_commit(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pre_commit", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


@pytest.mark.timeout(300)
def test_try_repo_runs_mmgen_validate(tmp_path: Path) -> None:
    hook_repo = _hook_repo(tmp_path)
    project = tmp_path / "project"
    (project / "specs").mkdir(parents=True)
    (project / "specs" / "hello.yaml").write_text(GOOD)
    (project / "specs" / "typo.yaml").write_text(
        GOOD.replace("prompt:", "promt:").replace("hello", "typo")
    )
    (project / "notes.yaml").write_text("promt: not a job file, not under specs/\n")
    _git(project, "init", "-q")
    _git(project, "add", ".")
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home")}
    env.pop("MINIMAX_API_KEY", None)

    # one try-repo (each installs mmgen afresh): the good file passes, the typo fails the hook
    ran = _pre_commit(project, env, "try-repo", str(hook_repo), "mmgen-validate", "--all-files")
    assert ran.returncode == 1, ran.stdout + ran.stderr
    assert re.search(r"mmgen validate\.+Failed", ran.stdout), ran.stdout
    problems = [line for line in ran.stdout.splitlines() if re.match(r"\S+:\d+:\d+: ", line)]
    assert problems == ["specs/typo.yaml:3:1: promt: unknown key; did you mean 'prompt'?"]
    assert "2 jobs" not in ran.stdout and "(1 valid job)" in ran.stdout  # hello.yaml was checked
    assert "notes.yaml" not in ran.stdout  # not a job file: outside specs/
