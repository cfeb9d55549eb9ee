"""Job files: load YAML with positions, expand, validate (every problem at once), resolve images.

A job file holds one job, or ``defaults:`` plus a ``jobs:`` list (``schemas/job.json`` is the
single source of truth of the format; ``mmgen schema`` prints it)::

    # one job                          # defaults + jobs
    name: seed                         defaults:
    model: S2V-01                        model: S2V-01
    prompt: A girl runs ...              prompt_optimizer: false
    subject_reference:                 jobs:
      - type: character                  - name: wave
        image: [images/face.png]           prompt: A man waves.
                                           subject_reference: [...]

Expansion of each job, in this order:

1. **defaults**: each top-level key of ``defaults:`` applies unless the job sets the same key (a
   job's value replaces the default's whole value; no deep merge).
2. **matrix**: ``matrix: {VAR: [v0, v1], OTHER: {label: value}}`` fans the job out over every
   combination, in the order written. A list's labels are its indexes; a mapping's labels are its
   keys. The job ``NAME`` becomes ``NAME-<label of VAR>-<label of OTHER>``, e.g. ``teaser-0-alice``.
3. **interpolation** in every string value of the request fields and ``output`` (not ``name``):
   ``${VAR}`` is the environment variable (unset is a problem, never an empty string),
   ``${matrix.VAR}`` the matrix value, ``$${`` a literal ``${``. A string that is exactly
   ``${matrix.VAR}`` takes the matrix value with its type (``duration: ${matrix.seconds}``).
   Matrix values may use ``${VAR}`` too. Problems never show an expanded value, only the text
   written in the file (so a secret from the environment is never echoed).
4. **images**: wherever the API takes an image (``subject_reference[].image[]``,
   ``first_frame_image``, ``last_frame_image``) a local path (relative to the job file) is read,
   checked (:mod:`mmgen.jobfile.images`) and replaced by a data URL; inline data URLs are
   decoded and checked the same way; http(s) URLs are kept (not fetched).
5. the complete job is validated against ``job.json#/$defs/job`` (the request schema of its model,
   strict about unknown keys), then its ``name`` (case-insensitively) and ``output`` must be
   unique across all files of the run.

Every problem is a :class:`~mmgen.errors.Problem` located at the offending value in the YAML
(for a missing key: at the mapping that lacks it; for an unknown key: at the key). A file with
any problem contributes no valid job (its jobs are still all checked). Advice that does not
make a job invalid (an old model name, a camera command the model ignores) is a warning: a
Problem whose ``severity`` is ``warning``. The prompt checks (camera commands, invisible
characters) are :mod:`mmgen.jobfile.prompts`. Nothing here prints or imports click.

This module is the public face; the rooms behind it are :mod:`mmgen.jobfile` (job files) and
:mod:`mmgen.schemas` (documents with positions, schemas, messages).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mmgen.errors import Problem, SpecError
from mmgen.jobfile.checking import SPEC_SUFFIXES, JobFileChecker
from mmgen.jobfile.jobs import JobSpec, spec_hash
from mmgen.jobfile.matrix import MAX_MATRIX_JOBS
from mmgen.jobfile.models import PROJECT_FILE, find_project_file, load_models
from mmgen.schemas.documents import MAX_DEPTH, MAX_FILE_BYTES, MAX_YAML_NODES

__all__ = [
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "MAX_MATRIX_JOBS",
    "MAX_YAML_NODES",
    "SPEC_SUFFIXES",
    "JobSpec",
    "ValidationResult",
    "load_jobs",
    "spec_hash",
    "validate_paths",
]


@dataclass
class ValidationResult:
    """Everything ``validate`` found: the files, the valid jobs, every problem and warning."""

    files: list[str]
    jobs: list[JobSpec]
    problems: list[Problem]
    warnings: list[Problem] = field(default_factory=list)
    """Advice that does not make a job invalid (``severity`` ``warning``), so ``str(warning)``
    reads ``FILE:LINE:COL: FIELD: warning: ...``."""

    @property
    def ok(self) -> bool:
        return not self.problems


def validate_paths(
    paths: Sequence[str | Path],
    *,
    env: Mapping[str, str] | None = None,
    models: str | Path | None = None,
) -> ValidationResult:
    """Find the job files under ``paths``, check them all and expand their jobs.

    ``models`` is the project file declaring models mmgen does not know (default: an
    ``mmgen.yaml`` among ``paths``, else the one found next to the job files,
    :func:`~mmgen.jobfile.models.find_project_file`).
    Never raises for bad input: every problem is returned in the result.
    """
    checker = JobFileChecker(os.environ if env is None else env)
    given = [Path(p) for p in paths if Path(p).name == PROJECT_FILE and Path(p).is_file()]
    paths = [p for p in paths if Path(p) not in given]  # a project file is never a job file
    project = models if models is not None else given[0] if given else find_project_file(paths)
    if project is not None:
        checker.models, problems = load_models(project)
        for problem in problems:
            checker.log.add(problem)
    files = checker.find_files(paths)
    for file in files:
        checker.check_file(file)
    jobs = checker.valid_jobs()
    return ValidationResult(
        files=files,
        jobs=jobs,
        problems=checker.log.problems(),
        warnings=sorted(checker.warnings),
    )


def load_jobs(
    paths: Sequence[str | Path],
    *,
    env: Mapping[str, str] | None = None,
    models: str | Path | None = None,
) -> list[JobSpec]:
    """The valid jobs under ``paths``; raise :class:`SpecError` listing every problem if any."""
    result = validate_paths(paths, env=env, models=models)
    if result.problems:
        raise SpecError(result.problems)
    return result.jobs
