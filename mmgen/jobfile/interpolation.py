"""``${VAR}``, ``${matrix.VAR}`` and ``$${`` inside one string of a job file.

``${VAR}`` is the environment variable (unset is a problem, never an empty string),
``${matrix.VAR}`` the value of the job's matrix variable, ``$${`` a literal ``${``. Error
messages show only what is written in the file, never a value from the environment.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mmgen.schemas.messages import truncate

__all__ = ["InterpolationError", "References", "interpolate", "whole_matrix_reference"]

_REF = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MATRIX_REF = re.compile(r"matrix\.([A-Za-z_][A-Za-z0-9_]*)")
_WHOLE_MATRIX = re.compile(r"\$\{matrix\.([A-Za-z_][A-Za-z0-9_]*)\}")


class InterpolationError(ValueError):
    """A reference that cannot be expanded; the message quotes only the file's text."""


@dataclass
class References:
    """The names one expansion used (filled in by :func:`interpolate`)."""

    env: set[str] = field(default_factory=set)
    matrix: set[str] = field(default_factory=set)


def whole_matrix_reference(text: str) -> str | None:
    """``VAR`` when ``text`` is exactly ``${matrix.VAR}`` (the value keeps its type)."""
    match = _WHOLE_MATRIX.fullmatch(text)
    return match.group(1) if match else None


def _matrix_text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def interpolate(
    text: str,
    env: Mapping[str, str] | None,
    matrix: Mapping[str, Any] | None,
    used: References,
) -> str:
    """Expand the references of ``text``.

    ``env=None`` keeps ``${VAR}`` and ``$${`` as written (the job's source form, see
    :attr:`mmgen.jobfile.spec.JobSpec.source_hash`) while still checking the references' syntax.
    ``matrix=None`` means matrix references are not allowed here (inside matrix values).
    """

    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "$${":
            return token if env is None else "${"
        inner = match.group(1)
        if inner is None:
            raise InterpolationError("unclosed ${: write $${ for a literal ${")
        matrix_ref = _MATRIX_REF.fullmatch(inner)
        if matrix_ref:
            return _matrix_text(_matrix_value(matrix_ref.group(1), matrix, used))
        if not _ENV_NAME.fullmatch(inner):
            raise InterpolationError(
                f"${{{truncate(inner, 30)}}} is not a valid reference "
                "(use ${VAR}, ${matrix.VAR}, or $${ for a literal ${)"
            )
        used.env.add(inner)
        if env is None:
            return token
        if inner not in env:
            raise InterpolationError(f"environment variable {inner} is not set")
        return env[inner]

    return _REF.sub(replace, text)


def _matrix_value(var: str, matrix: Mapping[str, Any] | None, used: References) -> Any:
    if matrix is None:
        raise InterpolationError(f"${{matrix.{var}}} cannot be used here")
    if var not in matrix:
        raise InterpolationError(f"${{matrix.{var}}}: the job has no matrix variable {var!r}")
    used.matrix.add(var)
    return matrix[var]
