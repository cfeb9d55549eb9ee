"""The job-file schema applied with job-file wording: a file's shape, then each complete job.

Two strict validators of ``schemas/job.json``: its root (the shape of a whole file, as editors
see it) and ``#/$defs/job`` (one complete, expanded job: the request schema of its model,
unknown keys rejected). The messages are :mod:`mmgen.schemas.messages`' with what job files
add: what a name or output pattern means, what matrix keys look like, and "for MODEL" on the
rules of a model.
"""

from __future__ import annotations

from functools import cache
from typing import Any, cast

from jsonschema import ValidationError

from mmgen.schemas import JOB_SCHEMA, load_schema, strict_validator
from mmgen.schemas.documents import DocPath
from mmgen.schemas.messages import RenderContext, Rendered, render
from mmgen.schemas.unknown_keys import UnknownKeyError

__all__ = ["OLD_MODELS", "file_problems", "job_problems", "model_warnings"]

PATTERN_HINTS = {
    "name": "a job name is letters, digits, '.', '_' and '-', starting with a letter or digit, "
    "at most 128 characters (no ${...})",
    "output": "must be a relative path ending in .mp4, without '..'",
    "callback_url": "must be an http(s) URL",
}
KEY_HINTS = {
    "matrix": "matrix variable name (letters, digits and _, not starting with a digit, at most 64)",
    "matrix.*": "matrix label (letters, digits, '.', '_' and '-', starting with a letter or digit, "
    "at most 64)",
}
REQUIRED_HINTS = {"name": "every job needs a name"}

OLD_MODELS = {
    "video-01": "video-01 is an old model name (still accepted): prefer T2V-01 (text) or I2V-01 "
    "(image), which have the same rules, or a MiniMax-Hailuo model",
}
"""Models the API still accepts but no longer documents as current -> the advice given."""


@cache
def _interpolated() -> dict[str, Any]:
    return cast(dict[str, Any], load_schema(JOB_SCHEMA)["$defs"]["interpolated"])


def file_problems(data: Any) -> list[Rendered]:
    """The shape of a whole job file (root of job.json), paths in the document."""
    context = RenderContext(
        pattern_hints=PATTERN_HINTS,
        key_hints=KEY_HINTS,
        required_hints=REQUIRED_HINTS,
        unexplained=(_interpolated(),),
    )
    validator = strict_validator(JOB_SCHEMA)
    return [item for error in validator.iter_errors(data) for item in render(error, context)]


def job_problems(job: dict[str, Any], written: dict[DocPath, str]) -> list[Rendered]:
    """One complete job against its model's rules, paths in the job.

    ``written`` holds the text as written in the file for values that expansion changed.
    """
    model = job.get("model")
    context = RenderContext(
        written=written,
        pattern_hints=PATTERN_HINTS,
        key_hints=KEY_HINTS,
        required_hints=REQUIRED_HINTS,
        unexplained=(_interpolated(),),
        rule=lambda error: _model_rule(job, error),
        owner=model if isinstance(model, str) else None,
    )
    errors = list(strict_validator(JOB_SCHEMA, "/$defs/job").iter_errors(job))
    model_broken = any(
        tuple(e.absolute_path) == ("model",)
        or (e.validator == "required" and not e.absolute_path and "model" not in job)
        for e in errors
    )
    out: list[Rendered] = []
    for error in errors:
        if model_broken and isinstance(error, UnknownKeyError) and len(error.absolute_path) == 1:
            continue  # without a model there are no rules to call a key unknown by
        out.extend(render(error, context))
    return out


def _model_rule(job: dict[str, Any], error: ValidationError) -> str:
    """`` for MODEL`` (`` at RESOLUTION``) when a model's own rule failed."""
    schema_path = list(error.absolute_schema_path)
    model = job.get("model")
    if "then" not in schema_path or not isinstance(model, str):
        return ""
    rule = f" for {model}"
    resolution = job.get("resolution")
    if schema_path.count("then") >= 2 and isinstance(resolution, str):
        rule += f" at {resolution}"
    return rule


def model_warnings(job: dict[str, Any]) -> list[tuple[DocPath, str]]:
    """Advice that does not make the job invalid (an old model name)."""
    model = job.get("model")
    if isinstance(model, str) and model in OLD_MODELS:
        return [(("model",), OLD_MODELS[model])]
    return []
