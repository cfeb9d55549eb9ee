"""``mmgen init``: the files of a new mmgen project.

A working project as created: an example job with a local image (``specs/``), the CI workflow
(validate on pull requests, the plan as a PR comment, run on main from the branch head's
records, one run at a time, commit the records back), a pre-commit config, the job schema for
editors and the editor setting that maps it, and the out dir's git settings (records kept, videos
ignored, the journal merged line by line). :func:`next_steps` is what to do after. The
templates live in ``mmgen/scaffold_files/``; the example image is ``specs/images/face.png`` of
mmgen's repository (shipped in the wheel as ``mmgen/_scaffold/face.png``, see pyproject.toml).

:func:`write_scaffold` never overwrites: when any file exists it writes nothing and says which.
"""

from __future__ import annotations

import json
import os
import shlex
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from mmgen import DISTRIBUTION, __version__
from mmgen.errors import UsageError
from mmgen.schemas import bundled_schema

#: The templates folder inside the package.
TEMPLATES = "scaffold_files"
#: Where the example image lives in a wheel (force-included from specs/images/face.png).
PACKAGED_IMAGE = ("_scaffold", "face.png")

SCHEMA_FILE = "job.schema.json"
WORKFLOW_FILE = ".github/workflows/mmgen.yml"
#: What the CI workflow installs: this very version, by its distribution name (the index's
#: ``mmgen`` is another project).
REQUIREMENT = f"{DISTRIBUTION}=={__version__}"


@dataclass(frozen=True)
class ScaffoldFile:
    """One file ``mmgen init`` writes: its path inside the project, its bytes, what it is for."""

    path: str
    content: bytes
    purpose: str


def _template(name: str) -> bytes:
    return (resources.files("mmgen") / TEMPLATES / name).read_bytes()


def example_image() -> bytes:
    """The example subject image: the packaged copy, or the repository's in a checkout."""
    packaged = resources.files("mmgen").joinpath(*PACKAGED_IMAGE)
    if packaged.is_file():
        return packaged.read_bytes()
    checkout = Path(__file__).resolve().parents[2] / "specs" / "images" / "face.png"
    return checkout.read_bytes()


def scaffold_files() -> list[ScaffoldFile]:
    """Every file of a new project, in the order they are written."""
    schema = json.dumps(bundled_schema(), indent=2, ensure_ascii=False) + "\n"
    settings = {"yaml.schemas": {f"./{SCHEMA_FILE}": ["specs/**/*.yaml", "specs/**/*.yml"]}}
    workflow = _template("mmgen.yml").decode("utf-8").replace("@MMGEN_REQUIREMENT@", REQUIREMENT)
    return [
        ScaffoldFile("specs/example.yaml", _template("example.yaml"), "an example job"),
        ScaffoldFile("specs/images/face.png", example_image(), "its local subject image"),
        ScaffoldFile(
            WORKFLOW_FILE,
            workflow.encode("utf-8"),
            "CI: validate and plan on pull requests, run on main",
        ),
        ScaffoldFile(
            ".pre-commit-config.yaml",
            _template("pre-commit-config.yaml"),
            "pre-commit: mmgen validate before each commit",
        ),
        ScaffoldFile(SCHEMA_FILE, schema.encode("utf-8"), "the job-file JSON Schema for editors"),
        ScaffoldFile(
            ".vscode/settings.json",
            (json.dumps(settings, indent=2) + "\n").encode("utf-8"),
            "VS Code: the schema for specs/*.yaml",
        ),
        ScaffoldFile(
            "mmgen-out/.gitignore",
            _template("out-gitignore"),
            "keep the outcome records in git, not the videos",
        ),
        ScaffoldFile(
            "mmgen-out/.gitattributes",
            _template("out-gitattributes"),
            "records from two commits merge line by line, never in conflict",
        ),
    ]


def existing_files(target: Path, files: list[ScaffoldFile] | None = None) -> list[str]:
    """The scaffold's paths that already exist under ``target`` (files, folders or links)."""
    return [
        f.path
        for f in (files if files is not None else scaffold_files())
        if os.path.lexists(target / f.path)
    ]


def write_scaffold(target: Path) -> list[ScaffoldFile]:
    """Write a new project into ``target`` (created if needed); return the files written.

    Raises :class:`UsageError` (exit 2), having written nothing, when any of the files exists.
    """
    files = scaffold_files()
    clash = existing_files(target, files)
    if clash:
        raise UsageError(
            f"{target}: {len(clash)} of the files `mmgen init` writes already exist: "
            f"{', '.join(clash)}; nothing was written",
            hint="move them away, or init another folder",
        )
    if target.exists() and not target.is_dir():
        raise UsageError(f"{target} is not a folder")
    written: list[Path] = []
    try:
        for item in files:
            path = target / item.path
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("xb") as handle:  # exclusive: never overwrite, even in a race
                handle.write(item.content)
            written.append(path)
    except FileExistsError as err:
        for path in written:
            path.unlink(missing_ok=True)
        raise UsageError(
            f"{err.filename} appeared while `mmgen init` was writing; nothing was kept"
        ) from err
    return files


def in_git_repository(folder: Path) -> bool:
    """Whether ``folder`` (or the nearest existing parent) is inside a git work tree."""
    folder = folder.resolve()
    return any((parent / ".git").exists() for parent in (folder, *folder.parents))


def next_steps(target: Path) -> list[str]:
    """The shell commands a new project's author runs next, in order: rehearse on the mock
    (offline), commit (``git init`` first when ``target`` is not in a repository)."""
    steps = [] if target.resolve() == Path.cwd().resolve() else [f"cd {shlex.quote(str(target))}"]
    steps.append("mmgen validate specs/ && mmgen run --mock specs/  # offline: mmgen-mock-out/")
    commit = 'git add . && git commit -m "mmgen project"'
    steps.append(commit if in_git_repository(target) else f"git init && {commit}")
    return steps
