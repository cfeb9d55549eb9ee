"""Acceptance tests driven by example job files.

``tests/spec_cases/positive/NAME.yaml`` must validate with no problem; its sibling ``NAME.jobs``
lists the expected jobs (``name output`` per line, in order), and ``NAME.warnings`` (when present)
the expected warnings, as ``LINE:COL: FIELD: warning: message`` lines.

``tests/spec_cases/negative/NAME.yaml`` must fail with exactly the problems listed in its sibling
``NAME.expected``, one per line as ``LINE:COL: FIELD: message`` (the file name is implied).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mmgen.jobfile.spec import spec_hash, validate_paths
from mmgen.schemas import request_validator

CASES = Path(__file__).parent / "spec_cases"
SECRET = "hunter2-s3cret-value"
ENV = {
    "MMGEN_TEST_PROMPT": "A cat",
    "MMGEN_TEST_CALLBACK": "https://hooks.example.org",
    "MMGEN_TEST_SECRET": SECRET,
}


def _cases(kind: str) -> list[Path]:
    return sorted((CASES / kind).glob("*.yaml"))


@pytest.mark.parametrize("case", _cases("positive"), ids=lambda p: p.stem)
def test_positive(case: Path) -> None:
    result = validate_paths([case], env=ENV)
    assert [str(p) for p in result.problems] == []
    warnings = case.with_suffix(".warnings")
    if warnings.is_file():
        actual = [str(w).removeprefix(f"{case}:") for w in result.warnings]
        assert actual == warnings.read_text(encoding="utf-8").splitlines()
        assert all(w.severity == "warning" for w in result.warnings)
    expected = [line.split() for line in case.with_suffix(".jobs").read_text().splitlines()]
    assert [[job.name, job.output] for job in result.jobs] == expected
    for job in result.jobs:
        # the body is what the API (and the mock) accepts, and nothing mmgen-only
        assert list(request_validator().iter_errors(job.body)) == []
        assert not {"name", "output", "matrix"} & job.body.keys()
        assert job.spec_hash == spec_hash(job.body)
        assert job.file == str(case)


@pytest.mark.parametrize("case", _cases("negative"), ids=lambda p: p.stem)
def test_negative(case: Path) -> None:
    result = validate_paths([case], env=ENV)
    prefix = f"{case}:"
    actual = [str(p).removeprefix(prefix) for p in result.problems]
    expected = case.with_suffix(".expected").read_text(encoding="utf-8").splitlines()
    # "{here}" stands for the folder of the cases, wherever the repository is checked out
    assert actual == [line.replace("{here}", str(case.parent)) for line in expected]
    assert all(p.file == str(case) for p in result.problems)
    assert SECRET not in "\n".join(actual)


def test_every_case_has_its_expectations() -> None:
    for case in _cases("negative"):
        assert case.with_suffix(".expected").is_file(), case
    for case in _cases("positive"):
        assert case.with_suffix(".jobs").is_file(), case
    assert len(_cases("negative")) >= 25 and len(_cases("positive")) >= 5
