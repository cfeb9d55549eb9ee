"""The compiled "valid?" fast path (:mod:`mmgen.schemas.compiled`) never hides a problem.

- Agreement: whatever jsonschema-rs calls valid, jsonschema's strict validator (whose errors
  become the messages) finds no error in, for jobs and whole files built from the schema's own
  keys with values of every kind (hypothesis, ``derandomize=True``), for jobs of a model a
  project declares (``tests/model_project``) and for every example of ``tests/spec_cases`` and
  ``specs/``.
- The regex difference between the engines (Python's ``\\s`` matches U+001C..U+001F, Rust's
  does not) still gives the message.
- 10,000 jobs in one file are validated in well under the CPU that jsonschema alone took.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmgen.jobfile.models import load_models
from mmgen.jobfile.spec import validate_paths
from mmgen.schemas import JOB_SCHEMA, strict_validator
from mmgen.schemas.compiled import compiled_check

ROOT = Path(__file__).resolve().parent.parent
PROJECT = Path(__file__).resolve().parent / "model_project"
CASES = Path(__file__).parent / "spec_cases"
EXAMPLES = sorted(CASES.glob("*/*.yaml")) + sorted((ROOT / "specs").glob("*.yaml"))

KEYS = [
    "name",
    "output",
    "model",
    "prompt",
    "prompt_optimizer",
    "callback_url",
    "aigc_watermark",
    "subject_reference",
    "first_frame_image",
    "last_frame_image",
    "duration",
    "resolution",
    "fast_pretreatment",
    "matrix",
    "promt",
    "audio",
]
MODELS = ["S2V-01", "MiniMax-Hailuo-02", "MiniMax-Hailuo-2.3", "T2V-01", "I2V-01", "video-01"]
TEXTS = [
    "job-1",
    "job-1\n",
    "a.mp4",
    "a.mp4\n",
    "../a.mp4",
    "https://example.org/face.jpg",
    "http://a\x1cb",
    "http://a\x1fb",
    "http://a b",
    "http://a\u00a0b",
    "face.png",
    "data:image/png;base64,AAAA",
    "${matrix.x}",
    "768P",
    "1080P",
    "512P",
    "720P",
    "character",
    "",
    "x" * 2001,
]
SCALARS = st.one_of(
    st.sampled_from([*TEXTS, *MODELS]),
    st.sampled_from([6, 10, 6.0, 10.0, 7, True, False, None, 2**70, -1]),
    st.just(datetime.date(2024, 1, 1)),
    st.text(max_size=8),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=2),
        st.dictionaries(st.sampled_from(["type", "image", "x", *KEYS[:4]]), inner, max_size=3),
    ),
    max_leaves=6,
)
REFERENCE = st.lists(
    st.fixed_dictionaries(
        {"type": st.sampled_from(["character", "object"])},
        optional={"image": st.lists(st.sampled_from(TEXTS), max_size=2), "x": SCALARS},
    ),
    max_size=2,
)
JOBS = st.fixed_dictionaries(
    {"name": st.sampled_from(TEXTS[:2]), "model": st.sampled_from(MODELS)},
    optional={
        key: (REFERENCE if key == "subject_reference" else st.one_of(SCALARS, VALUES))
        for key in KEYS
        if key not in ("name", "model")
    },
)


def jsonschema_finds_nothing(document: Any, pointer: str = "") -> bool:
    return not list(strict_validator(JOB_SCHEMA, pointer).iter_errors(document))


@settings(max_examples=600, derandomize=True, suppress_health_check=list(HealthCheck))
@given(JOBS)
def test_a_job_called_valid_has_no_error(job: dict[str, Any]) -> None:
    if compiled_check(JOB_SCHEMA, "/$defs/job")(job):
        assert jsonschema_finds_nothing(job, "/$defs/job"), job


@settings(max_examples=300, derandomize=True, suppress_health_check=list(HealthCheck))
@given(st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=3), st.lists(JOBS, max_size=2))
def test_a_file_called_valid_has_no_error(defaults: dict[str, Any], jobs: list[Any]) -> None:
    for document in ({"defaults": defaults, "jobs": jobs}, {"jobs": jobs}, *jobs):
        if compiled_check(JOB_SCHEMA)(document):
            assert jsonschema_finds_nothing(document), document


@settings(max_examples=300, derandomize=True, suppress_health_check=list(HealthCheck))
@given(JOBS)
def test_a_declared_model_job_called_valid_has_no_error(job: dict[str, Any]) -> None:
    declared, problems = load_models(PROJECT / "mmgen.yaml")
    assert problems == []
    job = {**job, "model": "MiniMax-Hailuo-3"}
    if declared.compiled_check("MiniMax-Hailuo-3")(job):
        assert not list(declared.validator("MiniMax-Hailuo-3").iter_errors(job)), job


def test_examples_get_the_same_verdict() -> None:
    checked = 0
    for example in EXAMPLES:
        try:
            document = yaml.safe_load(example.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError):
            continue  # not a document: nothing to validate
        fast = compiled_check(JOB_SCHEMA)(document)
        assert fast == jsonschema_finds_nothing(document), example
        checked += 1
    assert checked > 10


def test_a_separator_in_a_url_is_still_reported(tmp_path: Path) -> None:
    job = {
        "name": "hook",
        "model": "T2V-01",
        "prompt": "A cat.",
        "callback_url": "https://example.org/a\x1cb",
    }
    assert not compiled_check(JOB_SCHEMA, "/$defs/job")(job)
    spec = tmp_path / "hook.yaml"
    spec.write_text(json.dumps(job), encoding="utf-8")  # JSON is YAML; \x1c stays escaped
    result = validate_paths([spec], env={})
    assert [p.field for p in result.problems] == ["callback_url"]
    assert result.problems[0].message.endswith("must be an http(s) URL")


def ten_thousand_jobs(spec: Path, typo_at: int | None = None) -> Path:
    lines = [
        "defaults:",
        "  model: S2V-01",
        "  subject_reference: [{type: character, image: ['https://example.org/face.jpg']}]",
        "jobs:",
    ]
    for n in range(10_000):
        lines += [f"  - name: job{n:05d}", f"    prompt: A girl runs toward the camera, take {n}."]
        if n == typo_at:
            lines.append("    promt: a typo")
    spec.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return spec


def test_ten_thousand_jobs_with_the_fast_path(tmp_path: Path) -> None:
    """At the size users reach, the fast path's verdicts and jsonschema's messages agree: all
    10,000 valid jobs pass, and the one typo among them is reported once, located as before.
    (How fast: bench/bench_load.py, not a timed test.)"""
    valid = ten_thousand_jobs(tmp_path / "jobs.yaml")
    typo = ten_thousand_jobs(tmp_path / "typo.yaml", typo_at=5000)
    result = validate_paths([valid], env={})
    assert result.ok and len(result.jobs) == 10_000
    result = validate_paths([typo], env={})
    assert [str(p) for p in result.problems] == [f"{typo}:10007:5: jobs.5000.promt: unknown key"]
