"""Fuzzing the validator: malformed job files never crash it, and every problem is inside its file.

Two deterministic generators, over 1,000 files in all:

- a seeded mutation fuzzer over the valid examples (``tests/spec_cases/positive`` and
  ``specs/``): characters and lines deleted, inserted, duplicated and swapped, YAML's special
  characters and line breaks, values replaced by tricky ones (``${...}``, aliases, tags, merge
  keys, huge numbers), files truncated;
- hypothesis (``derandomize=True``): job mappings built from the schema's own keys with values
  of any type, written as YAML, and raw text from YAML's punctuation.

Checks: ``validate_paths`` returns (no exception), and every problem names the fuzzed file, at
a line between 1 and the file's line count (+1 only after a final newline) and a column >= 1.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmgen.errors import Problem
from mmgen.jobfile.spec import validate_paths

ROOT = Path(__file__).resolve().parent.parent
CASES = Path(__file__).parent / "spec_cases"
SEEDS = sorted((CASES / "positive").glob("*.yaml")) + sorted((ROOT / "specs").glob("*.yaml"))
ENV = {"MMGEN_TEST_PROMPT": "A cat", "MMGEN_TEST_CALLBACK": "https://hooks.example.org"}

MUTATIONS_PER_SEED = 100
CHARS = [*"\"'{}[]:,-#&*!|>%@`?$\\ \t\n\r", "\x85", "\u2028", "\ufeff", "\x00", "é", "\x1b"]
TOKENS = [
    "null",
    "~",
    "[]",
    "{}",
    "''",
    "${UNSET_VAR}",
    "${MMGEN_TEST_PROMPT}",
    "${matrix.x}",
    "$${",
    "${",
    "${ bad }",
    "*alias",
    "&anchor",
    "<<: {a: 1}",
    "!!python/object:os.system",
    "!!binary",
    "2024-01-01",
    ".inf",
    "-.nan",
    "1e400",
    "99999999999999999999999",
    "-",
    "? complex",
    "|",
    ">-",
    "[${IMG}]",
    "data:image/png;base64,AAAA",
    "file:///etc/passwd",
    "../images/face.gif",
    "/dev/null",
    '"a\\0b.png"',
    '"\\x00"',
    "true",
    "0x1F",
    "0o17",
    "6.0",
    "10",
    "1080P",
    "S2V-01",
    "video-01",
    "a" * 300,
]


def located_inside(problem: Problem, file: Path) -> bool:
    lines = file.read_bytes().split(b"\n")  # a final newline adds one (empty) line
    return problem.file == str(file) and 1 <= problem.line <= len(lines) and problem.column >= 1


def check(file: Path) -> int:
    result = validate_paths([file], env=ENV)
    outside = [str(p) for p in result.problems if not located_inside(p, file)]
    assert outside == [], file.read_bytes()
    return len(result.problems)


def mutate(text: str, rng: random.Random) -> str:
    for _ in range(rng.randint(1, 4)):
        lines = text.split("\n")
        kind = rng.randrange(7)
        at = rng.randrange(len(text) + 1)
        row = rng.randrange(len(lines))
        if kind == 0:
            text = text[:at] + text[at + rng.randint(1, 5) :]
        elif kind == 1:
            text = text[:at] + rng.choice(CHARS) + text[at:]
        elif kind == 2:
            lines.insert(row, lines[rng.randrange(len(lines))])
            text = "\n".join(lines)
        elif kind == 3:
            other = rng.randrange(len(lines))
            lines[row], lines[other] = lines[other], lines[row]
            text = "\n".join(lines)
        elif kind == 4:
            key, sep, _ = lines[row].partition(": ")
            lines[row] = f"{key}{sep or ': '}{rng.choice(TOKENS)}"
            text = "\n".join(lines)
        elif kind == 5:
            lines[row] = " " * rng.choice([1, 2, 3, 4, 8]) + lines[row]
            text = "\n".join(lines)
        else:
            text = text[:at]
    return text


@pytest.fixture
def fuzz_dir(tmp_path: Path) -> Path:
    """A folder where the examples' relative image paths still lead to images."""
    shutil.copytree(CASES / "images", tmp_path / "images")
    (tmp_path / "cases").mkdir()
    return tmp_path / "cases"


@pytest.mark.slow
def test_mutated_examples_never_crash_and_stay_located(fuzz_dir: Path) -> None:
    rng = random.Random(20261125)
    files = problems = 0
    for seed in SEEDS:
        original = seed.read_text(encoding="utf-8")
        for i in range(MUTATIONS_PER_SEED):
            file = fuzz_dir / f"{seed.stem}-{i}.yaml"
            file.write_bytes(mutate(original, rng).encode("utf-8", "surrogatepass"))
            problems += check(file)
            files += 1
    assert files >= 1000
    assert problems > files // 2  # the mutations do break files


_KEYS = [
    "name",
    "model",
    "prompt",
    "prompt_optimizer",
    "callback_url",
    "aigc_watermark",
    "output",
    "subject_reference",
    "first_frame_image",
    "last_frame_image",
    "duration",
    "resolution",
    "fast_pretreatment",
    "matrix",
    "type",
    "image",
    "jobs",
    "defaults",
    "x",
]
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([*TOKENS, "A cat.", "T2V-01", "I2V-01", "character", "720P", "a.mp4"]),
    st.text(max_size=20),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(_KEYS) | st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=12,
)
_DOCUMENTS = st.dictionaries(st.sampled_from(_KEYS), _VALUES, min_size=1, max_size=8)
_YAMLISH = st.text(alphabet=st.sampled_from(CHARS + list("abnm01 :\n-")), max_size=80)


@settings(
    derandomize=True,
    database=None,
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(document=_DOCUMENTS, flow=st.booleans())
def test_generated_job_mappings_never_crash_and_stay_located(
    fuzz_dir: Path, document: dict[str, object], flow: bool
) -> None:
    file = fuzz_dir / "generated.yaml"
    file.write_text(yaml.safe_dump(document, default_flow_style=flow), encoding="utf-8")
    check(file)


@settings(
    derandomize=True,
    database=None,
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(text=_YAMLISH)
def test_generated_yaml_text_never_crashes_and_stays_located(fuzz_dir: Path, text: str) -> None:
    file = fuzz_dir / "text.yaml"
    file.write_bytes(text.encode("utf-8", "surrogatepass"))
    check(file)
