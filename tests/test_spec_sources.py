"""What a job depends on besides its file, and the smaller validation findings of issue 9.

``JobSpec.source_hash`` lets ``plan`` tell "the job file changed" from "an environment variable
or a local image changed"; ``env_vars`` and ``local_images`` say which.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from mmgen.cli import main
from mmgen.jobfile.spec import load_jobs, spec_hash, validate_paths
from mmgen.schemas import request_validator

CASES = Path(__file__).parent / "spec_cases"
FACE = CASES / "images" / "face.jpg"
OTHER_FACE = CASES / "images" / "face.webp"

JOB = """\
name: teaser
model: S2V-01
prompt: ${PROMPT}
subject_reference:
  - type: character
    image: [images/face.jpg]
"""


@pytest.fixture
def job_file(tmp_path: Path) -> Path:
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "face.jpg").write_bytes(FACE.read_bytes())
    file = tmp_path / "teaser.yaml"
    file.write_text(JOB, encoding="utf-8")
    return file


def test_a_changed_environment_variable_keeps_the_source_hash(job_file: Path) -> None:
    [first] = load_jobs([job_file], env={"PROMPT": "A cat."})
    [second] = load_jobs([job_file], env={"PROMPT": "A dog."})
    assert first.spec_hash != second.spec_hash
    assert first.source_hash == second.source_hash
    assert first.env_vars == ("PROMPT",)


def test_a_changed_local_image_keeps_the_source_hash(job_file: Path) -> None:
    [first] = load_jobs([job_file], env={"PROMPT": "A cat."})
    (job_file.parent / "images" / "face.jpg").write_bytes(OTHER_FACE.read_bytes())
    [second] = load_jobs([job_file], env={"PROMPT": "A cat."})
    assert first.spec_hash != second.spec_hash
    assert first.source_hash == second.source_hash
    assert first.local_images == (str(job_file.parent / "images" / "face.jpg"),)


def test_a_changed_job_file_changes_the_source_hash(job_file: Path) -> None:
    [first] = load_jobs([job_file], env={"PROMPT": "A cat."})
    job_file.write_text(JOB.replace("${PROMPT}", "${PROMPT} Slowly."), encoding="utf-8")
    [second] = load_jobs([job_file], env={"PROMPT": "A cat."})
    assert first.source_hash != second.source_hash


def test_source_hash_is_of_the_fields_as_written_after_defaults_and_matrix(tmp_path: Path) -> None:
    file = tmp_path / "m.yaml"
    file.write_text(
        "defaults:\n  model: T2V-01\n  prompt_optimizer: false\n"
        "jobs:\n  - name: m\n    prompt: ${matrix.animal} by ${WHO}, $${literal}\n"
        "    duration: ${matrix.seconds}\n"
        "    matrix: {animal: [cat, '${ANIMAL}'], seconds: {six: 6}}\n",
        encoding="utf-8",
    )
    jobs = load_jobs([file], env={"WHO": "Ann", "ANIMAL": "dog"})
    assert [j.name for j in jobs] == ["m-0-six", "m-1-six"]
    written = [
        {
            "model": "T2V-01",
            "prompt_optimizer": False,
            "prompt": f"{animal} by ${{WHO}}, $${{literal}}",
            "duration": 6,
        }
        for animal in ("cat", "${ANIMAL}")
    ]
    assert [j.source_hash for j in jobs] == [spec_hash(w) for w in written]
    assert jobs[0].body["prompt"] == "cat by Ann, ${literal}"
    assert [j.env_vars for j in jobs] == [("WHO",), ("ANIMAL", "WHO")]


def test_without_env_or_local_images_source_and_spec_hash_agree(tmp_path: Path) -> None:
    file = tmp_path / "a.yaml"
    file.write_text("name: a\nmodel: T2V-01\nprompt: A cat.\n", encoding="utf-8")
    [job] = load_jobs([file], env={})
    assert job.source_hash == job.spec_hash
    assert (job.env_vars, job.local_images) == ((), ())


@pytest.mark.parametrize(
    "jobs",
    [
        "  - name: a\n    prompt: x\n  - name: b\n    prompt: y\n    prompt: z\n",
        "  - name: a\n    prompt: x\n  - <<: {prompt: y}\n    name: b\n",
        "  - name: a\n    prompt: x\n  - name: m\n    prompt: y\n    matrix: {v: [1, 2]}\n",
    ],
    ids=["duplicate-key", "merge-key", "unused-matrix-variable"],
)
def test_a_file_with_problems_contributes_no_valid_job(tmp_path: Path, jobs: str) -> None:
    file = tmp_path / "jobs.yaml"
    file.write_text("defaults:\n  model: T2V-01\njobs:\n" + jobs, encoding="utf-8")
    result = validate_paths([file], env={})
    assert result.problems and result.jobs == []
    outcome = CliRunner().invoke(main, ["validate", str(file)])
    assert outcome.exit_code == 2
    assert "(0 valid jobs)" in outcome.stderr


DOCUMENTED_MODELS = [  # /work/shared/minimax-api.md, with the oldest name, video-01
    "S2V-01",
    "MiniMax-Hailuo-2.3",
    "MiniMax-Hailuo-2.3-Fast",
    "MiniMax-Hailuo-02",
    "T2V-01-Director",
    "T2V-01",
    "I2V-01-Director",
    "I2V-01-live",
    "I2V-01",
    "video-01",
]


@pytest.mark.parametrize("model", DOCUMENTED_MODELS)
def test_the_request_schema_accepts_every_documented_model(model: str) -> None:
    image = "https://example.org/face.jpg"
    bodies = [
        {"model": model, "prompt": "A cat."},
        {"model": model, "first_frame_image": image},
        {"model": model, "subject_reference": [{"type": "character", "image": [image]}]},
    ]
    assert any(request_validator().is_valid(body) for body in bodies)


def test_video_01_is_valid_with_a_located_warning(tmp_path: Path) -> None:
    file = tmp_path / "old.yaml"
    file.write_text("name: old\nmodel: video-01\nprompt: A cat.\n", encoding="utf-8")
    result = validate_paths([file], env={})
    assert result.problems == [] and [j.name for j in result.jobs] == ["old"]
    [warning] = result.warnings
    assert str(warning).startswith(f"{file}:2:8: model: warning: video-01 is an old model name")
    assert "T2V-01" in warning.message and "I2V-01" in warning.message
    outcome = CliRunner().invoke(main, ["validate", str(file)])
    assert outcome.exit_code == 0  # warnings never change the exit code


def test_video_01_keeps_the_01_rules(tmp_path: Path) -> None:
    file = tmp_path / "old.yaml"
    file.write_text("name: old\nmodel: video-01\nprompt: A cat.\nduration: 10\n", encoding="utf-8")
    problems = [str(p) for p in validate_paths([file], env={}).problems]
    assert problems == [f"{file}:4:11: duration: 10 is not allowed for video-01 (only 6)"]


def test_a_nul_character_in_an_image_path_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    file = tmp_path / "nul.yaml"
    file.write_text('name: a\nmodel: I2V-01\nfirst_frame_image: "a\\0b.png"\n', encoding="utf-8")
    [problem] = validate_paths([file], env={}).problems
    assert (problem.line, problem.field) == (3, "first_frame_image")
    assert problem.message.startswith("not a usable file path")


def test_a_long_missing_image_path_is_not_echoed_whole(tmp_path: Path) -> None:
    file = tmp_path / "long.yaml"
    file.write_text(f"name: a\nmodel: I2V-01\nfirst_frame_image: {'a' * 5000}.png\n")
    [problem] = validate_paths([file], env={}).problems
    assert len(problem.message) < 200


def test_video_01_needs_a_prompt_or_a_first_frame_image(tmp_path: Path) -> None:
    file = tmp_path / "old.yaml"
    file.write_text("name: old\nmodel: video-01\n", encoding="utf-8")
    problems = [str(p) for p in validate_paths([file], env={}).problems]
    assert problems == [
        f"{file}:1:1: prompt: missing (required for video-01: prompt or first_frame_image)"
    ]
