"""The wheel ships what mmgen needs at run time besides code: the JSON Schemas, the default price
table, the `mmgen init` templates and its example image. Built with pip (hatchling from PyPI),
then run from the wheel itself (a zip on PYTHONPATH, ahead of the editable install)."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from mmgen import __version__
from mmgen.cli import main

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=240,
    )
    (built,) = out.glob("mmgen_minimax-*.whl")  # the distribution's name, not the command's
    return built


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_wheel_ships_data_files(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in (
        "mmgen/prices.yaml",
        "mmgen/_schemas/job.json",
        "mmgen/_schemas/video_generation.request.json",
        "mmgen/_scaffold/face.png",
        "mmgen/scaffold_files/mmgen.yml",
        "mmgen/scaffold_files/example.yaml",
        "mmgen/scaffold_files/pre-commit-config.yaml",
        "mmgen/scaffold_files/out-gitignore",
        "mmgen/scaffold_files/out-gitattributes",
        "mmgen/report/gallery.py",
    ):
        assert name in names, name
    (metadata,) = (n for n in names if n.endswith(".dist-info/METADATA"))
    assert "\nName: mmgen-minimax\n" in zipfile.ZipFile(wheel).read(metadata).decode()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_init_and_plan_run_from_the_wheel(wheel: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(wheel)}
    env.pop("MINIMAX_API_KEY", None)

    def mmgen(*args: str, cwd: Path = tmp_path) -> subprocess.CompletedProcess[str]:
        code = "import sys, mmgen.cli; assert mmgen.cli.__file__.startswith(sys.argv[1]); "
        code += "sys.argv = ['mmgen', *sys.argv[2:]]; mmgen.cli.main()"
        command = [sys.executable, "-c", code, str(wheel), *args]
        return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)

    made = mmgen("init", "project")
    assert made.returncode == 0, made.stderr
    project = tmp_path / "project"
    face = (ROOT / "specs" / "images" / "face.png").read_bytes()
    assert (project / "specs" / "images" / "face.png").read_bytes() == face
    plan = mmgen("plan", "specs", "--format", "markdown", "--detailed-exitcode", cwd=project)
    assert plan.returncode == 3, plan.stderr
    assert "estimated cost **$0.65**" in plan.stdout


def test_version_names_the_distribution() -> None:
    """`mmgen --version` tells mmgen-minimax from the index's `mmgen` (MMGeneration), whose
    import package has the same name."""
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.stdout == f"mmgen {__version__} (distribution mmgen-minimax)\n"
    assert importlib.metadata.version("mmgen-minimax") == __version__
