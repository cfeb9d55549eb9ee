"""Check job files: find them, read each, check its shape, expand and check every job.

:class:`JobFileChecker` runs the steps for each file and keeps what they found: every problem
(:class:`~mmgen.jobfile.problems.ProblemLog`), warnings, and a
:class:`~mmgen.jobfile.uniqueness.Candidate` per expanded job. A file with any problem (a
duplicate key, a merge key, an unused matrix variable...) contributes no valid job, though all
its jobs are still checked so that every problem is reported at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mmgen.errors import Problem
from mmgen.jobfile import images, prompts, rules
from mmgen.jobfile.expansion import Expanded, Issue, expand_job, merge_defaults
from mmgen.jobfile.jobs import JobSpec, spec_hash
from mmgen.jobfile.local_images import ImageChecker, image_slots
from mmgen.jobfile.matrix import TooManyJobs, combinations
from mmgen.jobfile.models import PROJECT_FILE, ModelCatalog
from mmgen.jobfile.problems import ProblemLog
from mmgen.jobfile.uniqueness import Candidate, clashes
from mmgen.schemas.documents import DocPath, DocumentKind, Positions, dotted, load_document

__all__ = ["JOB_FILE", "SPEC_SUFFIXES", "JobFileChecker"]

SPEC_SUFFIXES = (".yaml", ".yml")
JOB_FILE = DocumentKind(
    noun="job file",
    expected="a job (a mapping with name, model, ...)",
    shape="name: ..., model: ...",
)


@dataclass
class _File:
    """One job file being checked."""

    name: str
    data: dict[str, Any]
    positions: Positions
    shape_broken: list[DocPath] = field(default_factory=list)
    """Document paths where the file's shape is wrong."""
    unknown: set[DocPath] = field(default_factory=set)
    """Document paths of keys some job called unknown."""

    def place(self, path: DocPath, fld: DocPath, message: str, key: bool = False) -> Problem:
        line, col = self.positions.at(path, key=key)
        return Problem(self.name, line, col, dotted(fld), message)


@dataclass
class JobFileChecker:
    """Checks the job files of one run (``env`` gives ``${VAR}``)."""

    env: Mapping[str, str]
    log: ProblemLog = field(default_factory=ProblemLog)
    warnings: list[Problem] = field(default_factory=list)
    candidates: list[Candidate] = field(default_factory=list)
    images: ImageChecker = field(default_factory=ImageChecker)
    models: ModelCatalog = field(default_factory=ModelCatalog)
    """Models the project declares (:mod:`mmgen.jobfile.models`)."""

    def find_files(self, paths: Sequence[str | Path]) -> list[str]:
        """The job files under ``paths`` (folders searched, hidden parts skipped), once each."""
        files: list[str] = []
        seen: set[Path] = set()
        for given in paths:
            path = Path(given)
            if path.is_dir():
                found = [str(p) for p in _job_files_in(path)]
                if not found:
                    message = "folder holds no job files (*.yaml, *.yml)"
                    self.log.add(Problem(str(given), 1, 1, "", message))
            elif path.exists():
                found = [str(given)]
            else:
                self.log.add(Problem(str(given), 1, 1, "", "no such file or folder"))
                found = []
            for file in found:
                resolved = Path(file).resolve()
                if resolved not in seen:
                    seen.add(resolved)
                    files.append(file)
        return files

    def check_file(self, name: str) -> None:
        data, positions, own = load_document(name, kind=JOB_FILE)
        for problem in own:
            self.log.add(problem)
        if not isinstance(data, dict):
            return
        file = _File(name, data, positions)
        shape = self._check_shape(file)
        first = len(self.candidates)
        for entry_path, entry, defaults in _entries(data):
            self._check_entry(file, entry_path, entry, defaults)
        for path, problem in shape:  # one clear message: "unknown key" says it all
            if any(path[: len(u)] == u for u in file.unknown):
                self.log.withdraw(problem)
        if self.log.mentions(name):  # a file with a problem contributes no valid job
            for cand in self.candidates[first:]:
                cand.spec = None

    def valid_jobs(self) -> list[JobSpec]:
        for problem in clashes(self.candidates):
            self.log.add(problem)
        return [c.spec for c in self.candidates if c.spec is not None]

    def _check_shape(self, file: _File) -> list[tuple[DocPath, Problem]]:
        """The whole file against the root of job.json (as editors see it); returns the
        problems of values (not of unknown keys), which a job may make moot."""
        added = []
        for item in rules.file_problems(file.data, self.models):
            file.shape_broken.append(item.path)
            problem = file.place(item.path, item.field, item.message, item.at_key)
            self.log.add(problem)
            if not item.unknown_key:
                added.append((item.path, problem))
        return added

    def _check_entry(
        self, file: _File, entry_path: DocPath, entry: dict[str, Any], defaults: dict[str, Any]
    ) -> None:
        matrix_path = (*entry_path, "matrix")
        matrix = entry.get("matrix")
        if matrix is not None and (
            not isinstance(matrix, dict)
            or any(p[: len(matrix_path)] == matrix_path for p in file.shape_broken)
        ):
            return  # its shape was reported by the file check
        try:
            combos = combinations(matrix, matrix_path)
        except TooManyJobs as err:
            self.log.add(file.place(matrix_path, matrix_path, str(err)))
            return
        merged, origin = merge_defaults(entry_path, entry, defaults)
        used: set[str] = set()
        for combo in combos:
            expanded = expand_job(merged, origin, combo, self.env)
            used |= expanded.refs.matrix
            self._check_job(file, entry_path, expanded, bool(combo))
        for var in matrix or {}:
            if var not in used:
                path = (*matrix_path, var)
                message = (
                    f"matrix variable {var!r} is not used: write ${{matrix.{var}}} "
                    "in a value, or every combination is the same job"
                )
                self.log.add(file.place(path, path, message, key=True))

    def _check_job(
        self, file: _File, entry_path: DocPath, expanded: Expanded, from_matrix: bool
    ) -> None:
        name = expanded.name
        label = name if isinstance(name, str) else f"#{entry_path[-1] if entry_path else 0}"
        issues = list(expanded.issues)
        bad: set[DocPath] = set()
        for item in rules.job_problems(expanded.job, expanded.written, self.models):
            locate = expanded.locate_key if item.at_key else expanded.locate
            where = locate(item.path)
            issues.append(Issue(where, locate(item.field), item.message, item.at_key))
            bad.add(item.path)
            if item.unknown_key:
                file.unknown.add(where)
        local = self._resolve_images(expanded, bad, file.name, issues)
        for issue in issues:
            shared = issue.path[: len(entry_path)] != entry_path or from_matrix
            job = label if issue.per_job and shared else None
            self.log.add(file.place(issue.path, issue.field, issue.message, issue.at_key), job)
        warnings = [
            file.place(expanded.locate(exp_path), expanded.locate(exp_path), message)
            for exp_path, message in rules.model_warnings(expanded.job)
        ]
        prompt_errors = False
        if not bad & {("prompt",), ("model",)}:
            for problem in self._check_prompt(file, expanded):
                if problem.severity == "warning":
                    warnings.append(problem)
                    continue
                where = expanded.locate(("prompt",))
                shared = where[: len(entry_path)] != entry_path or from_matrix
                self.log.add(problem, label if shared else None)
                prompt_errors = True
        for warning in warnings:
            warning = replace(warning, severity="warning")
            if warning not in self.warnings:
                self.warnings.append(warning)
        if isinstance(name, str):
            valid = not issues and not prompt_errors
            self._add_candidate(file, entry_path, expanded, local if valid else None)

    def _check_prompt(self, file: _File, expanded: Expanded) -> list[Problem]:
        """Camera commands and invisible characters (:mod:`mmgen.jobfile.prompts`), each at
        its character when the prompt is written as sent, else at the prompt; findings at the
        same place are joined into one problem."""
        prompt, model = expanded.job.get("prompt"), expanded.job.get("model")
        if not isinstance(prompt, str) or not isinstance(model, str):
            return []
        where = expanded.locate(("prompt",))
        interpolated = ("prompt",) in expanded.written
        # camera commands are read with the matrix applied but ${VAR} as written: the value of
        # an environment variable (a secret?) is never echoed
        source = expanded.source.get("prompt")
        text = source if interpolated and isinstance(source, str) else prompt
        own = self.models.get(model)
        camera = own.camera_commands if own is not None else None
        findings = prompts.camera_findings(text, model, camera=camera)
        findings += prompts.invisible_characters(prompt)
        grouped: dict[tuple[int, int, str], list[str]] = {}
        for finding in sorted(findings, key=lambda f: f.offset):
            pos = None if interpolated else file.positions.char_at(where, prompt, finding.offset)
            line, col = pos or file.positions.at(where)
            grouped.setdefault((line, col, finding.severity), []).append(finding.message)
        return [
            Problem(file.name, line, col, dotted(where), "; ".join(messages), severity)
            for (line, col, severity), messages in grouped.items()
        ]

    def _resolve_images(
        self, expanded: Expanded, bad: set[DocPath], job_file: str, issues: list[Issue]
    ) -> list[str]:
        """Replace local images by data URLs (not where the schema found a problem)."""
        local: list[str] = []
        for exp_path, value in list(image_slots(expanded.job)):
            if any(exp_path[:i] in bad for i in range(1, len(exp_path) + 1)):
                continue
            try:
                resolved = self.images.resolve(value, job_file)
            except images.ImageError as err:
                where = expanded.locate(exp_path)
                issues.append(Issue(where, where, str(err)))
                continue
            _set_at(expanded.job, exp_path, resolved.url)
            expanded.written.setdefault(exp_path, value)
            if resolved.local_path is not None and resolved.local_path not in local:
                local.append(resolved.local_path)
        return local

    def _add_candidate(
        self, file: _File, entry_path: DocPath, expanded: Expanded, local: list[str] | None
    ) -> None:
        name: str = expanded.name
        output = expanded.job.get("output")
        name_path = expanded.locate(("name",))
        output_path = name_path if output is None else expanded.locate(("output",))
        output = f"{name}.mp4" if output is None else output
        spec = None
        if local is not None:
            body = {k: v for k, v in expanded.job.items() if k not in ("name", "output")}
            source = {k: v for k, v in expanded.source.items() if k not in ("name", "output")}
            spec = JobSpec(
                name=name,
                file=file.name,
                line=file.positions.at(entry_path)[0],
                body=body,
                spec_hash=spec_hash(body),
                output=output if isinstance(output, str) else f"{name}.mp4",
                source_hash=spec_hash(source),
                env_vars=tuple(sorted(expanded.refs.env)),
                local_images=tuple(local),
            )
        self.candidates.append(
            Candidate(
                spec,
                name,
                file.place(name_path, name_path, ""),
                output if isinstance(output, str) else None,
                file.place(output_path, output_path, ""),
            )
        )


def _job_files_in(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in SPEC_SUFFIXES
        and p.name != PROJECT_FILE
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def _entries(data: dict[str, Any]) -> list[tuple[DocPath, dict[str, Any], dict[str, Any]]]:
    """(path, entry, defaults) of each job entry of a file."""
    if "jobs" not in data and "defaults" not in data:
        return [((), data, {})]
    defaults = data.get("defaults")
    defaults = defaults if isinstance(defaults, dict) else {}
    jobs = data.get("jobs")
    if not isinstance(jobs, list):
        return []
    return [(("jobs", i), job, defaults) for i, job in enumerate(jobs) if isinstance(job, dict)]


def _set_at(job: dict[str, Any], path: DocPath, value: Any) -> None:
    target: Any = job
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
