"""The shared document machinery of mmgen.schemas: load_document and schema_problems.

The mock server's config uses the same two calls as job files, so these tests use a small
config-like schema of their own, independent of the job-file format.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from mmgen.errors import Problem
from mmgen.schemas import (
    REQUEST_SCHEMA,
    DocumentKind,
    load_document,
    request_validator,
    schema_problems,
    strict_validator,
)

CONFIG_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "seed": {"type": "integer", "minimum": 0},
        "faults": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"rate_limit": {"type": "number", "maximum": 1}},
        },
    },
}


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=10,
)


def write(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


def check(file: str) -> list[str]:
    data, positions, problems = load_document(file)
    assert data is not None, problems
    validator = Draft202012Validator(CONFIG_SCHEMA)
    return [str(p) for p in problems + schema_problems(file, data, positions, validator)]


def test_yaml_document_problems_are_located_with_readable_messages(tmp_path: Path) -> None:
    file = write(tmp_path / "mock.yaml", "seed: lots\nfaults:\n  ratelimit: 1\n")
    assert check(file) == [
        f"{file}:1:7: seed: must be an integer, not a string",
        f"{file}:3:3: faults.ratelimit: unknown key; did you mean 'rate_limit'?",
    ]
    file = write(tmp_path / "mock.yaml", "seed: -1\nfaults: {rate_limit: 1.5}\n")
    assert check(file) == [
        f"{file}:1:7: seed: -1 must be at least 0",
        f"{file}:2:22: faults.rate_limit: 1.5 must be at most 1",
    ]


def test_json_document_gives_the_same_problems_at_json_positions(tmp_path: Path) -> None:
    file = write(tmp_path / "mock.json", '{\n\t"seed": 1.5,\n\t"faults": {"rate_limit": 2}\n}\n')
    assert check(file) == [
        f"{file}:2:10: seed: must be an integer, not a number",
        f"{file}:3:27: faults.rate_limit: 2 must be at most 1",
    ]


def test_json_syntax_errors_and_duplicate_keys(tmp_path: Path) -> None:
    broken = write(tmp_path / "broken.json", '{"seed": 1,\n "faults": }\n')
    data, _, problems = load_document(broken)
    assert data is None
    assert [(p.line, p.column) for p in problems] == [(2, 12)]
    twice = write(tmp_path / "twice.json", '{"seed": 1,\n "seed": 2}\n')
    _, _, problems = load_document(twice)
    assert [str(p) for p in problems] == [
        f"{twice}:2:2: seed: duplicate key 'seed' (first at line 1)"
    ]


def test_document_kind_names_the_document(tmp_path: Path) -> None:
    file = write(tmp_path / "list.yaml", "- a\n- b\n")
    kind = DocumentKind(noun="mock config", shape="seed: ..., faults: ...")
    assert load_document(file, kind=kind)[2] == [
        Problem(file, 1, 1, "", "a mock config must be a mapping (seed: ..., faults: ...)")
    ]


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('seed: "1\n', (1, 7)),  # the opening quote, not the line after the file
        ("seed: 1\nfaults: {rate_limit: 'x", (2, 22)),
        ("seed: [1,\n", (1, 10)),  # end of the last line, not past the file
    ],
)
def test_syntax_errors_are_reported_inside_the_file(
    tmp_path: Path, text: str, where: tuple[int, int]
) -> None:
    file = write(tmp_path / "bad.yaml", text)
    data, _, problems = load_document(file)
    assert data is None
    assert [(p.line, p.column) for p in problems] == [where]


def test_strict_validator_reports_each_unknown_key_of_a_shipped_schema(tmp_path: Path) -> None:
    body = "model: S2V-01\nsubject_reference:\n  - type: character\n    image: [x]\n    wieght: 1\n"
    file = write(tmp_path / "body.yaml", body)
    data, positions, _ = load_document(file)
    strict = schema_problems(file, data, positions, strict_validator(REQUEST_SCHEMA))
    plain = schema_problems(file, data, positions, request_validator())
    unknown = f"{file}:5:5: subject_reference.0.wieght: unknown key"
    assert unknown in [str(p) for p in strict]
    assert unknown in [str(p) for p in plain]  # a standard validator's error, split per key


def test_positions_count_only_newlines_as_line_breaks(tmp_path: Path) -> None:
    # YAML also breaks lines at U+2028, U+0085 and a lone \r; FILE:LINE readers do not.
    file = write(tmp_path / "odd.yaml", "x: 1\u2028y: 2\x85z: [3\rw: 4\n")
    data, positions, problems = load_document(file)
    assert data is None
    assert [(p.line, p.column) for p in problems] == [(1, 18)]  # the file has one line
    file = write(tmp_path / "odd.yaml", "x: 1\u2028y: lots\n")
    data, positions, problems = load_document(file)
    assert data == {"x": 1, "y": "lots"} and problems == []
    assert positions.at(("y",)) == (1, 9) and positions.at(("y",), key=True) == (1, 6)


def test_no_private_api_of_jsonschema_is_used() -> None:
    package = Path(__file__).resolve().parent.parent / "mmgen"
    for source in package.rglob("*.py"):
        text = source.read_text(encoding="utf-8")
        assert "_resolver" not in text, source
        assert "jsonschema._" not in text, source


def test_json_documents_keep_the_depth_limit(tmp_path: Path) -> None:
    file = write(tmp_path / "deep.json", '{"a": ' + "[" * 80 + "]" * 80 + "}")
    data, _, problems = load_document(file)
    assert data is None
    assert [p.message for p in problems] == ["nested more than 64 levels deep"]


@settings(derandomize=True, database=None, max_examples=150, deadline=None)
@given(value=_JSON, cut=st.integers(0, 400), junk=st.sampled_from(["", ",", "}", '"', "\t", "\n"]))
def test_generated_json_never_crashes_and_stays_located(value: object, cut: int, junk: str) -> None:
    text = json.dumps({"config": value}, indent=1)
    text = text[:cut] + junk + text[cut:] if junk else text
    with tempfile.TemporaryDirectory() as folder:
        file = write(Path(folder) / "config.json", text)
        data, positions, problems = load_document(file)
        lines = len(text.split("\n"))
        for problem in problems:
            assert problem.file == file and 1 <= problem.line <= lines and problem.column >= 1
        if data is not None:
            for line, column in [*positions.values.values(), *positions.keys.values()]:
                assert 1 <= line <= lines and column >= 1


def test_a_bundle_embeds_only_the_schemas_it_refers_to() -> None:
    from mmgen.schemas import JOB_SCHEMA, bundled_schema

    assert REQUEST_SCHEMA in bundled_schema(JOB_SCHEMA)["$defs"]
    # the request schema refers to no other file (nor will the mock's config schema)
    assert JOB_SCHEMA not in bundled_schema(REQUEST_SCHEMA)["$defs"]
