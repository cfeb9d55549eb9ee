"""One job entry -> complete jobs: defaults applied, one job per matrix combination, ``${...}``
expanded, with a map from every value back to where it is written in the document.

1. **defaults**: each top-level key of ``defaults:`` applies unless the job sets the same key (a
   job's value replaces the default's whole value; no deep merge).
2. **matrix**: one job per combination (:mod:`mmgen.jobfile.matrix`).
3. **interpolation** in every string value of the request fields and ``output`` (not ``name``),
   see :mod:`mmgen.jobfile.interpolation`. A string that is exactly ``${matrix.VAR}`` takes the
   matrix value with its type (``duration: ${matrix.seconds}``); matrix values may use ``${VAR}``.

Besides the job, the expansion keeps its *source*: the same mapping with the matrix applied but
``${VAR}`` left as written (what :attr:`mmgen.jobfile.spec.JobSpec.source_hash` hashes).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from mmgen.jobfile.interpolation import (
    InterpolationError,
    References,
    interpolate,
    whole_matrix_reference,
)
from mmgen.jobfile.matrix import MatrixValue, job_name
from mmgen.schemas.documents import DocPath

__all__ = ["Expanded", "Issue", "expand_job", "merge_defaults", "resolve"]


class Issue(NamedTuple):
    """A problem of an expanded job, located in the document."""

    path: DocPath
    field: DocPath
    message: str
    at_key: bool = False
    per_job: bool = True
    """Name the job(s) in the message when the value is shared (defaults, matrix jobs)."""


@dataclass
class Expanded:
    """One complete job as expanded (images still as written)."""

    name: Any
    job: dict[str, Any]
    source: dict[str, Any]
    """The job with the matrix applied and ``${VAR}``/``$${`` kept as written."""
    origin: dict[DocPath, DocPath]
    """Path in the job -> path in the document (longest known prefix applies)."""
    written: dict[DocPath, str] = field(default_factory=dict)
    """Path in the job -> the text as written, where expansion changed the value."""
    refs: References = field(default_factory=References)
    issues: list[Issue] = field(default_factory=list)
    matrix_paths: dict[str, DocPath] = field(default_factory=dict)
    """Matrix variable -> where its value (in this combination) is written."""
    keys: dict[DocPath, DocPath] = field(default_factory=dict)
    """Top-level key in the job -> where that key is written (the job entry or defaults)."""

    def locate(self, exp_path: DocPath) -> DocPath:
        return resolve(self.origin, exp_path)

    def locate_key(self, exp_path: DocPath) -> DocPath:
        """Where the *key* at ``exp_path`` is written: in the mapping that holds it, even when
        its value comes from elsewhere (``key: ${matrix.VAR}`` takes the matrix value, but a
        typo in ``key`` is written once, at the key)."""
        if exp_path in self.keys or not exp_path:
            return self.keys.get(exp_path, self.locate(exp_path))
        return (*self.locate(exp_path[:-1]), exp_path[-1])


def resolve(origin: Mapping[DocPath, DocPath], exp_path: DocPath) -> DocPath:
    """Map a path in the expanded job to the path of the value in the document."""
    for i in range(len(exp_path), -1, -1):
        base = origin.get(exp_path[:i])
        if base is not None:
            return (*base, *exp_path[i:])
    return exp_path


def merge_defaults(
    entry_path: DocPath, entry: dict[str, Any], defaults: dict[str, Any]
) -> tuple[dict[str, Any], dict[DocPath, DocPath]]:
    """The entry's fields over the defaults (matrix left out), with where each is written."""
    merged: dict[str, Any] = {}
    origin: dict[DocPath, DocPath] = {(): entry_path}
    for key, value in defaults.items():
        merged[key] = value
        origin[(key,)] = ("defaults", key)
    for key, value in entry.items():
        if key != "matrix":
            merged[key] = value
            origin[(key,)] = (*entry_path, key)
    return merged, origin


def expand_job(
    merged: dict[str, Any],
    origin: dict[DocPath, DocPath],
    combo: tuple[MatrixValue, ...],
    env: Mapping[str, str],
) -> Expanded:
    """The job of one matrix combination (``combo`` is empty without a matrix)."""
    result = Expanded(
        name=job_name(merged.get("name"), combo),
        job={},
        source={},
        origin=dict(origin),
        keys=dict(origin),
    )
    values, raw = _matrix_values(combo, env, result)
    for key, value in merged.items():
        if key == "name":
            result.job[key] = result.source[key] = result.name
            continue
        result.job[key] = _expand(value, (key,), env, values, result)
        result.source[key] = _source(value, raw)
    return result


def _matrix_values(
    combo: tuple[MatrixValue, ...], env: Mapping[str, str], result: Expanded
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The combination's values with ``${VAR}`` expanded, and as written."""
    values: dict[str, Any] = {}
    raw: dict[str, Any] = {}
    for item in combo:
        raw[item.var] = values[item.var] = item.value
        result.matrix_paths[item.var] = item.path
        if isinstance(item.value, str) and "$" in item.value:
            try:
                values[item.var] = interpolate(item.value, env, None, result.refs)
            except InterpolationError as err:
                result.issues.append(Issue(item.path, item.path, str(err), per_job=False))
    return values, raw


def _expand(
    value: Any, exp_path: DocPath, env: Mapping[str, str], values: dict[str, Any], result: Expanded
) -> Any:
    if isinstance(value, list):
        return [_expand(v, (*exp_path, i), env, values, result) for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: _expand(v, (*exp_path, k), env, values, result) for k, v in value.items()}
    if not isinstance(value, str) or "$" not in value:
        return value
    var = whole_matrix_reference(value)
    if var is not None and var in values:
        result.refs.matrix.add(var)
        result.origin[exp_path] = result.matrix_paths[var]
        return values[var]
    try:
        expanded = interpolate(value, env, values, result.refs)
    except InterpolationError as err:
        where = result.locate(exp_path)
        result.issues.append(Issue(where, where, str(err)))
        return value
    if expanded != value:
        result.written[exp_path] = value
    return expanded


def _source(value: Any, raw: dict[str, Any]) -> Any:
    """``value`` with the matrix applied and ``${VAR}`` kept (errors are the job's, not here)."""
    if isinstance(value, list):
        return [_source(v, raw) for v in value]
    if isinstance(value, dict):
        return {k: _source(v, raw) for k, v in value.items()}
    if not isinstance(value, str) or "$" not in value:
        return value
    var = whole_matrix_reference(value)
    if var is not None and var in raw:
        return raw[var]
    try:
        return interpolate(value, None, raw, References())
    except InterpolationError:
        return value
