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

from mmgen.jobfile.models import ModelCatalog
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


def file_problems(data: Any, declared: ModelCatalog | None = None) -> list[Rendered]:
    """The shape of a whole job file (root of job.json), paths in the document. The model
    names and fields ``declared`` by the project are not problems here: the rules of a
    declared model are checked on each complete job."""
    context = RenderContext(
        pattern_hints=PATTERN_HINTS,
        key_hints=KEY_HINTS,
        required_hints=REQUIRED_HINTS,
        unexplained=(_interpolated(),),
    )
    validator = strict_validator(JOB_SCHEMA)
    items = [item for error in validator.iter_errors(data) for item in render(error, context)]
    if declared is None or not declared.models:
        return items
    return [item for item in items if not _declared(item, data, declared)]


def _declared(item: Rendered, data: Any, declared: ModelCatalog) -> bool:
    """Whether a file-shape problem is a declared model's name or field."""
    if item.unknown_key:  # the declared model's own check names the key (did you mean...)
        return item.path[-1] in declared.field_names or _entry_model(data, item.path, declared)
    if item.path[-1:] == ("model",):
        value: Any = data
        for part in item.path:
            if isinstance(value, dict):
                value = value.get(part)
            elif isinstance(value, list) and isinstance(part, int) and part < len(value):
                value = value[part]
            else:
                return False
        return declared.get(value) is not None
    return False


def _entry_model(data: Any, path: DocPath, declared: ModelCatalog) -> bool:
    """Whether the job entry holding the key at ``path`` has a declared model."""
    if not isinstance(data, dict):
        return False
    entry: Any = data
    if path[:1] == ("jobs",) and len(path) == 3 and isinstance(data.get("jobs"), list):
        jobs, index = data["jobs"], path[1]
        entry = jobs[index] if isinstance(index, int) and index < len(jobs) else None
    elif len(path) != 1:
        return False
    defaults = data.get("defaults")
    default = defaults.get("model") if isinstance(defaults, dict) else None
    model = entry.get("model", default) if isinstance(entry, dict) else None
    return declared.get(model) is not None


def job_problems(
    job: dict[str, Any], written: dict[DocPath, str], declared: ModelCatalog | None = None
) -> list[Rendered]:
    """One complete job against its model's rules (a model the project ``declared``: its
    declaration), paths in the job.

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
    own = declared.get(model) if declared is not None else None
    validator = (
        declared.validator(own.name)
        if declared is not None and own is not None
        else strict_validator(JOB_SCHEMA, "/$defs/job")
    )
    errors = list(validator.iter_errors(job))
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
