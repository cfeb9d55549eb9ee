"""Unit tests of mmgen.jobfile.spec and mmgen.jobfile.images beyond the example-file cases."""

from __future__ import annotations

import dataclasses
import json
import tomllib
from importlib import resources
from pathlib import Path

import pytest
import yaml

from mmgen.errors import SpecError
from mmgen.jobfile import images, spec
from mmgen.jobfile.spec import JobSpec, load_jobs, spec_hash, validate_paths
from mmgen.schemas import documents, schema_dir

ROOT = Path(__file__).resolve().parent.parent
CASES = Path(__file__).parent / "spec_cases"

JOB = "name: {name}\nmodel: T2V-01\nprompt: {prompt}\n"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_jobspec_fields_and_hash(tmp_path: Path) -> None:
    file = write(tmp_path / "a.yaml", "# comment\n\n" + JOB.format(name="a", prompt="A cat."))
    [job] = load_jobs([file], env={})
    assert job == JobSpec(
        name="a",
        file=str(file),
        line=3,
        body={"model": "T2V-01", "prompt": "A cat."},
        spec_hash=job.spec_hash,
        output="a.mp4",
    )
    canonical = '{"model":"T2V-01","prompt":"A cat."}'
    import hashlib

    assert job.spec_hash == hashlib.sha256(canonical.encode()).hexdigest()
    with pytest.raises(dataclasses.FrozenInstanceError):
        job.name = "b"  # type: ignore[misc]


def test_spec_hash_ignores_key_order_and_keeps_unicode() -> None:
    assert spec_hash({"a": 1, "b": "é"}) == spec_hash({"b": "é", "a": 1})
    assert spec_hash({"a": 1}) != spec_hash({"a": 2})


def test_spec_hash_changes_with_the_image_bytes(tmp_path: Path) -> None:
    face = (CASES / "images" / "face.jpg").read_bytes()
    write(tmp_path / "a.yaml", "name: a\nmodel: I2V-01\nfirst_frame_image: f.jpg\n")
    (tmp_path / "f.jpg").write_bytes(face)
    first = load_jobs([tmp_path], env={})[0].spec_hash
    (tmp_path / "f.jpg").write_bytes((CASES / "images" / "jpeg-named.png").read_bytes())
    assert load_jobs([tmp_path], env={})[0].spec_hash != first


def test_load_jobs_raises_spec_error_with_every_problem(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", "name: a\nmodel: T2V-01\n")
    write(tmp_path / "b.yaml", "name: b\nmodel: T2V-01\nprompt: x\nduration: 10\n")
    with pytest.raises(SpecError) as info:
        load_jobs([tmp_path], env={})
    assert [str(p) for p in info.value.problems] == [
        f"{tmp_path / 'a.yaml'}:1:1: prompt: missing (required for T2V-01)",
        f"{tmp_path / 'b.yaml'}:4:11: duration: 10 is not allowed for T2V-01 (only 6)",
    ]
    assert info.value.exit_code == 2


def test_folders_are_searched_recursively_sorted_and_hidden_folders_skipped(
    tmp_path: Path,
) -> None:
    write(tmp_path / "b.yml", JOB.format(name="b", prompt="x"))
    write(tmp_path / "a" / "z.yaml", JOB.format(name="z", prompt="x"))
    write(tmp_path / ".git" / "x.yaml", "not: a job")
    write(tmp_path / "notes.txt", "ignored")
    result = validate_paths([tmp_path, tmp_path / "b.yml"], env={})
    assert result.files == [str(tmp_path / "a" / "z.yaml"), str(tmp_path / "b.yml")]
    assert [j.name for j in result.jobs] == ["z", "b"]
    assert result.ok


def test_explicit_file_with_any_suffix_is_read(tmp_path: Path) -> None:
    file = write(tmp_path / "job.txt", JOB.format(name="t", prompt="x"))
    assert [j.name for j in load_jobs([file], env={})] == ["t"]


def test_names_are_unique_across_files_case_insensitively(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", JOB.format(name="Teaser", prompt="x"))
    write(tmp_path / "b.yaml", JOB.format(name="teaser", prompt="y"))
    result = validate_paths([tmp_path], env={})
    assert [str(p) for p in result.problems] == [
        f"{tmp_path / 'b.yaml'}:1:7: name: duplicate job name 'teaser' "
        f"(also at {tmp_path / 'a.yaml'}:1)"
    ]
    assert [j.name for j in result.jobs] == ["Teaser"]


def test_env_defaults_to_os_environ(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMGEN_UNIT_PROMPT", "from the environment")
    file = write(tmp_path / "a.yaml", JOB.format(name="a", prompt="${MMGEN_UNIT_PROMPT}"))
    assert load_jobs([file])[0].body["prompt"] == "from the environment"
    monkeypatch.delenv("MMGEN_UNIT_PROMPT")
    [problem] = validate_paths([file]).problems
    assert problem.message == "environment variable MMGEN_UNIT_PROMPT is not set"


def test_secret_values_never_reach_messages(tmp_path: Path) -> None:
    secret = "sk-very-secret-0123456789"
    file = write(
        tmp_path / "a.yaml",
        "name: a\nmodel: T2V-01\nprompt: ${KEY}\ncallback_url: ${KEY}\nduration: ${KEY}\n",
    )
    result = validate_paths([file], env={"KEY": secret})
    assert len(result.problems) == 2
    assert secret not in json.dumps([str(p) for p in result.problems])


def test_huge_file_is_refused_before_parsing(tmp_path: Path) -> None:
    file = tmp_path / "big.yaml"
    file.write_bytes(b"#" * (spec.MAX_FILE_BYTES + 1))
    [problem] = validate_paths([file], env={}).problems
    assert (problem.line, problem.column, problem.field) == (1, 1, "")
    assert "limited to 5242880 bytes" in problem.message


def test_deep_nesting_is_a_problem(tmp_path: Path) -> None:
    deep = "[" * 80 + "]" * 80
    file = write(tmp_path / "deep.yaml", f"name: a\nmodel: T2V-01\nprompt: {deep}\n")
    [problem] = validate_paths([file], env={}).problems
    assert problem.message == "nested more than 64 levels deep"


def test_huge_image_is_refused_without_reading_it(tmp_path: Path) -> None:
    big = tmp_path / "big.png"
    with big.open("wb") as f:
        f.truncate(21 * 1024 * 1024)  # sparse
    file = write(tmp_path / "a.yaml", "name: a\nmodel: I2V-01\nfirst_frame_image: big.png\n")
    [problem] = validate_paths([file], env={}).problems
    assert (problem.line, problem.column, problem.field) == (3, 20, "first_frame_image")
    assert problem.message == "image is 21.0 MB; it must be under 20 MB"


def test_image_checks_boundaries() -> None:
    from io import BytesIO

    from PIL import Image

    def png(w: int, h: int) -> bytes:
        buf = BytesIO()
        Image.new("L", (w, h)).save(buf, "PNG")
        return buf.getvalue()

    assert images.check_image_bytes(png(301, 301)).mime == "image/png"
    with pytest.raises(images.ImageError, match="short edge"):
        images.check_image_bytes(png(300, 400))
    assert images.check_image_bytes(png(1000, 400)).width == 1000  # exactly 5:2
    with pytest.raises(images.ImageError, match="aspect ratio"):
        images.check_image_bytes(png(1003, 401))
    assert images.check_image_bytes(png(400, 1000)).height == 1000  # exactly 2:5
    with pytest.raises(images.ImageError, match="empty"):
        images.check_image_bytes(b"")


def test_local_images_become_data_urls_with_the_real_mime_type(tmp_path: Path) -> None:
    file = write(
        tmp_path / "a.yaml",
        f"name: a\nmodel: I2V-01\nfirst_frame_image: {CASES / 'images' / 'jpeg-named.png'}\n",
    )
    [job] = load_jobs([file], env={})
    assert job.body["first_frame_image"].startswith("data:image/jpeg;base64,/9j/")


def test_python_and_libyaml_loaders_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    negative = sorted((CASES / "negative").glob("yaml-*.yaml"))
    with_c = [(p.line, p.column, p.field) for p in validate_paths(negative, env={}).problems]
    monkeypatch.setattr(documents, "_Loader", yaml.SafeLoader)
    pure = [(p.line, p.column, p.field) for p in validate_paths(negative, env={}).problems]
    assert pure == with_c


def test_schemas_ship_with_the_package() -> None:
    names = {entry.name for entry in schema_dir().iterdir()}
    assert {"job.json", "video_generation.request.json"} <= names
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    force = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    assert force["schemas"] == "mmgen/_schemas"


def test_installed_package_reads_its_own_copy() -> None:
    packaged = resources.files("mmgen") / "_schemas"
    if not packaged.is_dir():
        pytest.skip("source checkout / editable install: schemas are read from schemas/")
    assert (packaged / "job.json").read_text() == (ROOT / "schemas" / "job.json").read_text()
    assert str(schema_dir()) == str(packaged)


def test_example_specs_are_valid_and_few() -> None:
    result = validate_paths([ROOT / "specs"], env={})
    assert result.problems == []
    assert 1 <= len(result.jobs) <= 6
    seed = next(j for j in result.jobs if j.name == "seed")
    assert seed.body == {
        "model": "S2V-01",
        "prompt": "A girl runs toward the camera and winks with a smile.",
        "prompt_optimizer": True,
        "subject_reference": [{"type": "character", "image": ["https://example.org/face.jpg"]}],
    }
    face = ROOT / "specs" / "images" / "face.png"
    assert face.stat().st_size < 100_000
    assert images.check_image_bytes(face.read_bytes()).mime == "image/png"
