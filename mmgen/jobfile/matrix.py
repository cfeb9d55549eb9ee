"""A job's ``matrix:``: every combination of its variables' values, in the order written.

``matrix: {VAR: [v0, v1], OTHER: {label: value}}``: a list's labels are its indexes, a
mapping's labels are its keys. Each combination becomes one job named
``NAME-<label of VAR>-<label of OTHER>``.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

from mmgen.schemas.documents import DocPath

__all__ = ["MAX_MATRIX_JOBS", "MatrixValue", "TooManyJobs", "combinations"]

MAX_MATRIX_JOBS = 1000
"""Combinations one matrix may produce."""


@dataclass(frozen=True)
class MatrixValue:
    """One variable's value in one combination."""

    var: str
    label: str
    value: Any
    path: DocPath
    """Where the value is written in the document."""


class TooManyJobs(ValueError):
    """The matrix makes more than :data:`MAX_MATRIX_JOBS` combinations."""


def combinations(
    matrix: dict[str, Any] | None, matrix_path: DocPath
) -> list[tuple[MatrixValue, ...]]:
    """Every combination (one empty combination without a matrix).

    ``matrix`` must have passed the file's schema (a mapping of non-empty lists or mappings).
    """
    if matrix is None:
        return [()]
    axes: list[list[MatrixValue]] = []
    for var, values in matrix.items():
        labelled = enumerate(values) if isinstance(values, list) else values.items()
        axes.append([MatrixValue(var, str(lb), v, (*matrix_path, var, lb)) for lb, v in labelled])
    count = math.prod(len(axis) for axis in axes)
    if count > MAX_MATRIX_JOBS:
        raise TooManyJobs(f"matrix makes {count} jobs; at most {MAX_MATRIX_JOBS} are allowed")
    return list(itertools.product(*axes))


def job_name(base: Any, combo: tuple[MatrixValue, ...]) -> Any:
    """``NAME-LABEL1-LABEL2`` for a combination (the name as written without a matrix)."""
    if combo and isinstance(base, str):
        return "-".join([base, *(value.label for value in combo)])
    return base
