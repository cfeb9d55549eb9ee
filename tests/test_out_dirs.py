"""Out dirs that contain each other are refused before anything runs: a run on ``nest`` used
to delete the ``.part`` files (downloads in progress) of a concurrent run on ``nest/sub``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from mmgen.cli import main
from mmgen.state.journal import JOURNAL
from tests.fakes import SEED_SPEC as SPEC

RECORD = {"job": "other", "spec": "s.yaml", "spec_hash": "h", "state": "submitted", "task_id": "1"}


def out_dir_with_records(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / JOURNAL).write_text(json.dumps(RECORD) + "\n")
    return folder


def run(tmp_path: Path, out: Path, *more: str) -> tuple[int, list[str]]:
    specs = tmp_path / "specs"
    specs.mkdir(exist_ok=True)
    (specs / "seed.yaml").write_text(SPEC)
    args = ["run", str(specs), "--out", str(out), "--base-url", "http://127.0.0.1:9", *more]
    result = CliRunner().invoke(main, args, env={"MINIMAX_API_KEY": "k"})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.stderr.splitlines()


def test_an_out_dir_inside_another_is_refused(tmp_path: Path) -> None:
    nest = out_dir_with_records(tmp_path / "nest")
    code, lines = run(tmp_path, nest / "sub")
    assert code == 2
    assert lines == [
        f"mmgen: error: out dir {nest / 'sub'} is inside the out dir {nest} (it holds {JOURNAL})"
        " (use a folder outside it: out dirs must not contain each other)"
    ]
    assert not (nest / "sub").exists()


@pytest.mark.parametrize("depth", ["sub", "sub/deeper"])
def test_an_out_dir_holding_another_is_refused_and_its_downloads_survive(
    tmp_path: Path, depth: str
) -> None:
    inner = out_dir_with_records(tmp_path / "nest" / depth)
    part = inner / ".other.1a2b3c4d.mp4.x1y2.part"  # a download of a run on nest/sub
    part.write_bytes(b"in progress")
    code, lines = run(tmp_path, tmp_path / "nest")
    assert code == 2
    assert len(lines) == 1 and f"holds the out dir {inner} (it holds {JOURNAL})" in lines[0]
    assert part.exists()  # it was deleted by the outer run's tidying
    assert not (tmp_path / "nest" / JOURNAL).exists()


def test_siblings_are_fine(tmp_path: Path) -> None:
    out_dir_with_records(tmp_path / "a")
    out_dir_with_records(tmp_path / "b")
    code, lines = run(tmp_path, tmp_path / "b", "--max-tasks", "0")  # planned, then the guard
    assert code == 2 and "--max-tasks" in lines[-1] and "out dir" not in lines[-1]
