"""`mmgen validate` and `mmgen schema` through click's CliRunner: exit codes and formats."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from jsonschema import Draft202012Validator

from mmgen.cli import main

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
NEGATIVE = Path(__file__).parent / "spec_cases" / "negative"
BAD = NEGATIVE / "unknown-keys.yaml"


def run(*args: str, env: dict[str, str | None] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.stdout, result.stderr


def test_valid_specs_exit_0_with_summary_on_stdout() -> None:
    code, out, err = run("validate", str(SPECS))
    assert code == 0
    assert out == "4 files, 6 jobs: ok\n"
    assert err == ""


def test_quiet_valid_prints_nothing() -> None:
    assert run("-q", "validate", str(SPECS)) == (0, "", "")


def test_problems_exit_2_one_per_line_on_stdout_summary_on_stderr() -> None:
    code, out, err = run("validate", str(BAD))
    assert code == 2
    assert out.splitlines() == [
        f"{BAD}:4:1: promt: unknown key; did you mean 'prompt'?",
        f"{BAD}:5:1: duration: not a field of S2V-01 (unknown key)",
        f"{BAD}:9:5: subject_reference.0.weight: unknown key",
    ]
    assert err == "mmgen: 3 problems in 1 file (0 valid jobs)\n"


def test_quiet_problems_keeps_the_problems() -> None:
    code, out, err = run("-q", "validate", str(BAD))
    assert code == 2 and len(out.splitlines()) == 3 and err == ""


def test_json_format() -> None:
    code, out, _ = run("validate", "--format", "json", str(BAD))
    assert code == 2
    data = json.loads(out)
    assert data[0] == {
        "file": str(BAD),
        "line": 4,
        "column": 1,
        "field": "promt",
        "message": "unknown key; did you mean 'prompt'?",
        "severity": "error",
    }
    keys = {"file", "line", "column", "field", "message", "severity"}
    assert [set(d) for d in data] == [keys] * 3


def test_json_format_valid_is_an_empty_list() -> None:
    code, out, _ = run("validate", "--format", "json", str(SPECS))
    assert (code, json.loads(out)) == (0, [])


def test_github_format_escapes() -> None:
    code, out, _ = run("validate", "--format", "github", str(BAD))
    assert code == 2
    lines = out.splitlines()
    assert lines[0] == (
        f"::error file={BAD},line=4,col=1,title=promt::unknown key; did you mean 'prompt'?"
    )
    assert len(lines) == 3


def test_github_format_escapes_commas_and_newlines() -> None:
    from mmgen.errors import Problem
    from mmgen.report import problems_github

    text = problems_github([Problem("a,b.yaml", 1, 2, "x:y", "50% done\nnext")])
    assert text == "::error file=a%2Cb.yaml,line=1,col=2,title=x%3Ay::50%25 done%0Anext"


def test_many_files_and_a_missing_path(tmp_path: Path) -> None:
    code, out, err = run("validate", str(SPECS), str(tmp_path / "nope.yaml"), str(tmp_path))
    assert code == 2
    assert out.splitlines() == [
        f"{tmp_path}:1:1: (document): folder holds no job files (*.yaml, *.yml)",
        f"{tmp_path / 'nope.yaml'}:1:1: (document): no such file or folder",
    ]
    assert "2 problems in 2 files (6 valid jobs)" in err


def test_every_negative_case_exits_2_without_traceback() -> None:
    env = {
        "MMGEN_TEST_PROMPT": "A cat",
        "MMGEN_TEST_CALLBACK": "https://hooks.example.org",
        "MMGEN_TEST_SECRET": "hunter2-s3cret-value",
        "MMGEN_TEST_UNSET": None,
    }
    code, out, err = run("validate", str(NEGATIVE), env=env)
    assert code == 2
    assert "Traceback" not in out + err
    expected = sum(
        len(p.read_text(encoding="utf-8").splitlines()) for p in NEGATIVE.glob("*.expected")
    )
    assert len(out.splitlines()) == expected
    assert "hunter2-s3cret-value" not in out + err


def test_usage_errors_exit_2() -> None:
    assert run("validate")[0] == 2
    assert run("validate", "--format", "xml", str(SPECS))[0] == 2


@pytest.mark.parametrize("args", [["validate", "--help"], ["schema", "--help"]])
def test_help(args: list[str]) -> None:
    code, out, _ = run(*args)
    assert code == 0 and "Usage:" in out


def test_schema_prints_a_valid_draft_2020_12_schema() -> None:
    code, out, _ = run("schema")
    assert code == 0
    schema = json.loads(out)
    Draft202012Validator.check_schema(schema)
    assert schema["$id"] == "https://mmgen.invalid/schemas/job.json"
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_printed_schema_is_self_contained_and_checks_files() -> None:
    """An editor gets one file: the request schema is embedded, refs resolve without fetching."""
    import yaml
    from referencing import Registry

    code, out, _ = run("schema")
    assert code == 0
    schema = json.loads(out)
    assert "video_generation.request.json" in schema["$defs"]
    validator = Draft202012Validator(schema, registry=Registry())  # nothing to look up
    for path in sorted((Path(__file__).parent.parent / "specs").glob("*.yaml")):
        assert list(validator.iter_errors(yaml.safe_load(path.read_text()))) == [], path
    bad = {"name": "x", "model": "S2V-01", "prompt": 5, "subject_reference": []}
    assert list(validator.iter_errors(bad))


def test_warnings_go_to_stderr_and_keep_exit_0(tmp_path: Path) -> None:
    file = tmp_path / "old.yaml"
    file.write_text("name: old\nmodel: video-01\nprompt: A cat.\n", encoding="utf-8")
    code, out, err = run("validate", str(file))
    assert code == 0
    assert out == "1 file, 1 job: ok, 1 warning\n"
    assert err.startswith(f"{file}:2:8: model: warning: video-01 is an old model name")


CAMERA_ON_S2V = """\
name: subject
model: S2V-01
prompt: A girl runs [Push in] and winks.
subject_reference:
  - type: character
    image: [https://example.org/face.jpg]
"""


def test_warnings_in_every_format_and_strict(tmp_path: Path) -> None:
    file = tmp_path / "camera.yaml"
    file.write_text(CAMERA_ON_S2V, encoding="utf-8")
    message = "[Push in]: S2V-01 does not take camera commands"
    code, out, err = run("validate", str(file))
    assert (code, out) == (0, "1 file, 1 job: ok, 1 warning\n")
    assert err.startswith(f"{file}:3:21: prompt: warning: {message}")
    code, out, _ = run("validate", "--format", "json", str(file))
    [item] = json.loads(out)
    assert code == 0
    assert (item["line"], item["column"], item["severity"]) == (3, 21, "warning")
    assert item["message"].startswith(message)
    code, out, _ = run("validate", "--format", "github", str(file))
    assert code == 0 and out.startswith(f"::warning file={file},line=3,col=21,title=prompt::")
    code, out, err = run("validate", "--strict", str(file))
    assert code == 2
    assert out.startswith(f"{file}:3:21: prompt: warning: {message}")
    assert "1 problem in 1 file" in err


def test_prompt_errors_are_located_at_the_character(tmp_path: Path) -> None:
    file = tmp_path / "prompt.yaml"
    prompt = '"A fox\\u200b runs [Pan lef]."'
    file.write_text(f"name: fox\nmodel: MiniMax-Hailuo-02\nprompt: {prompt}\n", "utf-8")
    code, out, _ = run("validate", "--format", "github", str(file))
    assert code == 2
    assert out.splitlines() == [
        f"::error file={file},line=3,col=15,title=prompt::invisible character U+200B ZERO "
        "WIDTH SPACE (character 6 of the prompt): MiniMax refuses invisible characters (1042); "
        "delete it, e.g. retype the words around it",
        f"::error file={file},line=3,col=27,title=prompt::[Pan lef]: unknown camera command "
        "'Pan lef'; did you mean 'Pan left'?",
    ]


def test_a_typo_in_a_matrix_job_is_one_annotation() -> None:
    case = NEGATIVE / "matrix-typo-key.yaml"
    code, out, _ = run("validate", "--format", "github", str(case))
    assert code == 2
    assert out.splitlines() == [
        f"::error file={case},line=5,col=5,title=jobs.0.promt::unknown key; did you mean "
        "'prompt'? (in jobs teaser-0, teaser-1)"
    ]
