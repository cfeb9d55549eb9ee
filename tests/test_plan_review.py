"""What a reviewer sees in `mmgen plan`: subject images, prompt word diffs, the cost.

``tests/plan_comment/review.md`` is the comment expected for a pull request with a URL subject,
a repository subject (linked at the pull request's head commit) and a changed prompt; ``{version}``
stands for mmgen's version.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from mmgen import __version__
from mmgen.cli import main
from mmgen.jobfile.spec import load_jobs
from mmgen.state.changes import request_snapshot, word_diff
from mmgen.state.journal import RecordStore
from mmgen.state.records import Record

HERE = Path(__file__).resolve().parent
FACE = HERE.parent / "specs" / "images" / "face.png"
HEAD = "0123456789abcdef0123456789abcdef01234567"

URL_JOB = """\
name: url-subject
model: S2V-01
prompt: A girl runs toward the camera and winks.
subject_reference:
  - type: character
    image: [https://example.org/face.jpg]
"""
REPO_JOB = """\
name: repo-subject
model: MiniMax-Hailuo-02
first_frame_image: images/face.png
prompt: The person turns and smiles. [Push in]
"""
HERO = """\
name: hero
model: S2V-01
prompt: {prompt}
subject_reference:
  - type: character
    image: [images/face.png]
"""


def run(*args: str, env: dict[str, str | None] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def pull_request(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str | None]:
    """A checkout with three jobs; hero ran before with another prompt (task 900)."""
    monkeypatch.chdir(tmp_path)
    specs = tmp_path / "specs"
    (specs / "images").mkdir(parents=True)
    shutil.copy(FACE, specs / "images" / "face.png")
    (specs / "url.yaml").write_text(URL_JOB)
    (specs / "repo.yaml").write_text(REPO_JOB)
    (specs / "hero.yaml").write_text(HERO.format(prompt="The hero runs to the sea."))
    [old] = [job for job in load_jobs(["specs"]) if job.name == "hero"]
    store = RecordStore(tmp_path / "out")
    with store.lock():
        store.put(
            Record(
                job="hero",
                spec=old.file,
                spec_hash=old.spec_hash,
                state="success",
                task_id="900",
                request=request_snapshot(old.body),
            )
        )
    (specs / "hero.yaml").write_text(HERO.format(prompt="The hero waves to the big sea!"))
    event = tmp_path / "event.json"
    pr = {"pull_request": {"head": {"sha": HEAD, "repo": {"full_name": "someone/fork"}}}}
    event.write_text(json.dumps(pr))
    return {
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_REPOSITORY": "team/videos",
        "GITHUB_SHA": "f" * 40,  # the merge commit of a pull_request event
        "GITHUB_EVENT_PATH": str(event),
        "GITHUB_WORKSPACE": str(tmp_path),
    }


def test_plan_comment_shows_subjects_and_the_prompt_change(
    pull_request: dict[str, str | None],
) -> None:
    code, md, _ = run("plan", "specs", "--out", "out", "--format", "markdown", env=pull_request)
    assert code == 0
    expected = (HERE / "plan_comment" / "review.md").read_text(encoding="utf-8")
    assert md == expected.replace("{version}", __version__)


def test_outside_github_actions_a_repository_image_is_named(
    pull_request: dict[str, str | None],
) -> None:
    no_github = dict.fromkeys(pull_request)
    code, md, _ = run("plan", "specs", "--out", "out", "--format", "markdown", env=no_github)
    assert code == 0
    assert "Subject image: `specs/images/face.png`" in md
    assert "raw/" not in md
    assert '<img src="https://example.org/face.jpg"' in md


def test_a_push_event_links_at_github_sha(pull_request: dict[str, str | None]) -> None:
    push = dict(pull_request, GITHUB_EVENT_PATH=None)
    code, md, _ = run("plan", "specs", "--out", "out", "--format", "markdown", env=push)
    assert code == 0
    assert f"https://github.com/team/videos/raw/{'f' * 40}/specs/images/face.png" in md


def test_text_plan_shows_cost_and_word_diff(pull_request: dict[str, str | None]) -> None:
    code, out, _ = run("plan", "specs", "--out", "out")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["job", "action", "reason", "estimate"]
    assert any(line.split()[:2] == ["hero", "changed"] and "$0.65" in line for line in lines)
    assert "  prompt: The hero [-runs-] {+waves+} to the [-sea.-]{+big sea!+}" in lines
    assert lines[-1] == (
        "Plan: 2 submit, 1 changed. 3 new tasks: estimated cost $1.58 "
        "(estimates; MiniMax bills by its own price list)."
    )


def test_word_diff_rebuilds_both_sides() -> None:
    old, new = "A cat sits on the mat.", "A black cat sat on the mat!"
    runs = word_diff(old, new)
    assert "".join(t for op, t in runs if op != "removed") == new
    assert "".join(t for op, t in runs if op != "added") == old
    assert ("added", "black ") in runs
