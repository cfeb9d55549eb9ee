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
   checked (:mod:`mmgen.images`) and replaced by a data URL; inline data URLs are decoded and
   checked the same way; http(s) URLs are kept (not fetched).
5. the complete job is validated against ``job.json#/$defs/job`` (the request schema of its model,
   strict about unknown keys), then its ``name`` (case-insensitively) and ``output`` must be
   unique across all files of the run.

Every problem is a :class:`~mmgen.errors.Problem` located at the offending value in the YAML
(for a missing key: at the mapping that lacks it; for an unknown key: at the key). Nothing here
prints or imports click.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from difflib import get_close_matches
from functools import cache
from pathlib import Path
from typing import Any, cast

import yaml
from jsonschema import Draft202012Validator, ValidationError, validators
from jsonschema.protocols import Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from mmgen import images
from mmgen.errors import Problem, SpecError
from mmgen.schemas import JOB_SCHEMA, load_schema, registry

__all__ = [
    "MAX_FILE_BYTES",
    "MAX_MATRIX_JOBS",
    "MAX_YAML_NODES",
    "JobSpec",
    "ValidationResult",
    "load_jobs",
    "spec_hash",
    "validate_paths",
]

MAX_FILE_BYTES = 5 * 1024 * 1024
"""Job files larger than this are refused (inline data URLs count)."""
MAX_YAML_NODES = 100_000
"""Values in one document after alias expansion: beyond this it is an alias bomb, not a job file."""
MAX_DEPTH = 64
"""Nesting depth of a document (the format needs 5)."""
MAX_MATRIX_JOBS = 1000
"""Combinations one matrix may produce."""
SPEC_SUFFIXES = (".yaml", ".yml")

JOB_SCHEMA_ID = "https://mmgen.invalid/schemas/job.json"

DocPath = tuple[str | int, ...]
Pos = tuple[int, int]


@dataclass(frozen=True)
class JobSpec:
    """One expanded, valid job: what ``plan`` and ``run`` work on."""

    name: str
    """Unique across all files of a run; safe as a file name."""
    file: str
    """The job file, as the user gave it or as found in a folder."""
    line: int
    """1-based line where the job starts in ``file``."""
    body: dict[str, Any]
    """The exact API request body: API fields only, images as URLs or data URLs, ${VAR} expanded."""
    spec_hash: str
    """sha256 hex of the canonical JSON of ``body`` (see :func:`spec_hash`)."""
    output: str
    """Video file name relative to the out dir (default ``NAME.mp4``)."""


@dataclass
class ValidationResult:
    """Everything ``validate`` found: the files, the valid jobs and every problem."""

    files: list[str]
    jobs: list[JobSpec]
    problems: list[Problem]

    @property
    def ok(self) -> bool:
        return not self.problems


def spec_hash(body: Mapping[str, Any]) -> str:
    """sha256 hex of the canonical JSON of a request body (stable across runs and machines)."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def validate_paths(
    paths: Sequence[str | Path], *, env: Mapping[str, str] | None = None
) -> ValidationResult:
    """Find the job files under ``paths``, check them all and expand their jobs.

    Never raises for bad input: every problem is returned in the result.
    """
    checker = _Checker(os.environ if env is None else env)
    files = checker.find_files(paths)
    for file in files:
        checker.check_file(file)
    checker.check_unique()
    return ValidationResult(files=files, jobs=checker.valid_jobs(), problems=checker.problems())


def load_jobs(
    paths: Sequence[str | Path], *, env: Mapping[str, str] | None = None
) -> list[JobSpec]:
    """The valid jobs under ``paths``; raise :class:`SpecError` listing every problem if any."""
    result = validate_paths(paths, env=env)
    if result.problems:
        raise SpecError(result.problems)
    return result.jobs


# --- schema validators -----------------------------------------------------------------------


class _UnknownKey(ValidationError):
    """One key that no applicable schema declares (one error per key, located at the key)."""

    suggestion: str | None = None


def _evaluated_keys(validator: Any, instance: dict[str, Any], schema: Any) -> set[str]:
    """Keys of ``instance`` some applicable subschema declares.

    Adapted from jsonschema's ``find_evaluated_property_keys_by_schema``, with one deliberate
    difference: every ``allOf`` branch counts even when it fails, so a key the model's rules
    declare is not also called "unknown" because another of its values is wrong (the failure is
    reported on its own). ``anyOf``/``oneOf`` branches count only when they hold, and ``if``
    selects ``then``/``else`` as the standard says.
    """
    if not isinstance(schema, dict):
        return set()
    keys: set[str] = set()
    for ref_keyword in ("$ref", "$dynamicRef"):
        ref = schema.get(ref_keyword)
        if ref is not None:
            resolved = validator._resolver.lookup(ref)
            sub = validator.evolve(schema=resolved.contents, _resolver=resolved.resolver)
            keys |= _evaluated_keys(sub, instance, resolved.contents)
    properties = schema.get("properties")
    if isinstance(properties, dict):
        keys |= properties.keys() & instance.keys()
    for keyword in ("additionalProperties", "unevaluatedProperties"):
        sub_schema = schema.get(keyword)
        if sub_schema is not None:
            keys |= {
                k
                for k, v in instance.items()
                if not any(True for _ in validator.descend(v, sub_schema))
            }
    for pattern in schema.get("patternProperties", {}):
        keys |= {k for k in instance if re.search(pattern, k)}
    for sub_schema in schema.get("allOf", []):
        keys |= _evaluated_keys(validator, instance, sub_schema)
    for keyword in ("anyOf", "oneOf"):
        for sub_schema in schema.get(keyword, []):
            if validator.evolve(schema=sub_schema).is_valid(instance):
                keys |= _evaluated_keys(validator, instance, sub_schema)
    if "if" in schema:
        if validator.evolve(schema=schema["if"]).is_valid(instance):
            keys |= _evaluated_keys(validator, instance, schema["if"])
            keys |= _evaluated_keys(validator, instance, schema.get("then", {}))
        else:
            keys |= _evaluated_keys(validator, instance, schema.get("else", {}))
    return keys


_STANDARD = Draft202012Validator.VALIDATORS


def _unknown_key(validator: Any, key: str, instance: dict[str, Any], schema: Any) -> _UnknownKey:
    """The error for one unknown key, with a "did you mean" among the keys allowed here."""
    error = _UnknownKey(f"unknown key {key!r}", path=[key])
    for candidate in get_close_matches(key, _all_property_names(), n=3, cutoff=0.7):
        if candidate in instance:
            continue
        trial = {**instance, candidate: None}
        if candidate in _evaluated_keys(validator, trial, schema):
            error.suggestion = candidate
            break
    return error


def _unevaluated_properties(
    validator: Any, value: Any, instance: Any, schema: dict[str, Any]
) -> Iterator[ValidationError]:
    if value is not False or not isinstance(instance, dict):
        yield from _STANDARD["unevaluatedProperties"](validator, value, instance, schema)
        return
    evaluated = _evaluated_keys(validator, instance, schema)
    for key in instance:
        if key not in evaluated:
            yield _unknown_key(validator, key, instance, schema)


@cache
def _all_property_names() -> tuple[str, ...]:
    """Every property name the schemas declare (candidates for "did you mean")."""
    from mmgen.schemas import REQUEST_SCHEMA

    names = _all_names(load_schema(JOB_SCHEMA)) | _all_names(load_schema(REQUEST_SCHEMA))
    return tuple(sorted(names))


def _all_names(schema: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(schema, dict):
        props = schema.get("properties")
        if isinstance(props, dict):
            found |= set(props)
        for value in schema.values():
            if isinstance(value, dict | list):
                found |= _all_names(value)
    elif isinstance(schema, list):
        for item in schema:
            found |= _all_names(item)
    return found


def _additional_properties(
    validator: Any, value: Any, instance: Any, schema: dict[str, Any]
) -> Iterator[ValidationError]:
    if value is not False or not isinstance(instance, dict):
        yield from _STANDARD["additionalProperties"](validator, value, instance, schema)
        return
    declared = schema.get("properties", {})
    patterns = schema.get("patternProperties", {})
    for key in instance:
        if key not in declared and not any(re.search(p, key) for p in patterns):
            yield _unknown_key(validator, key, instance, schema)


_MmgenValidator: Any = validators.extend(  # type: ignore[no-untyped-call]
    Draft202012Validator,
    {
        "unevaluatedProperties": _unevaluated_properties,
        "additionalProperties": _additional_properties,
    },
)


@cache
def _registry() -> Registry[Any]:
    """The schemas as Draft 2020-12 resources without their ``$schema`` keyword.

    jsonschema picks the validator class of a referenced resource from its ``$schema``; without
    it, ``$ref`` into the request schema keeps :data:`_MmgenValidator` (one error per unknown key).
    """
    resources = []
    shared = registry()
    for resource_id in shared:
        contents = {k: v for k, v in shared[resource_id].contents.items() if k != "$schema"}
        resources.append((resource_id, DRAFT202012.create_resource(contents)))
    return Registry().with_resources(resources).crawl()


@cache
def _file_validator() -> Validator:
    """The root of job.json: the shape of a whole file (as editors see it)."""
    Draft202012Validator.check_schema(load_schema(JOB_SCHEMA))
    return cast(Validator, _MmgenValidator({"$ref": JOB_SCHEMA_ID}, registry=_registry()))


@cache
def _job_validator() -> Validator:
    """``job.json#/$defs/job``: one complete, expanded job."""
    return cast(
        Validator,
        _MmgenValidator({"$ref": f"{JOB_SCHEMA_ID}#/$defs/job"}, registry=_registry()),
    )


@cache
def _interpolated_def() -> dict[str, Any]:
    return cast(dict[str, Any], load_schema(JOB_SCHEMA)["$defs"]["interpolated"])


@cache
def _models() -> tuple[str, ...]:
    from mmgen.schemas import REQUEST_SCHEMA

    return tuple(load_schema(REQUEST_SCHEMA)["properties"]["model"]["enum"])


# --- YAML with positions -----------------------------------------------------------------------


class _YamlProblem(Exception):
    def __init__(self, node: yaml.Node, message: str, path: DocPath = ()) -> None:
        super().__init__(message)
        self.pos = _mark(node)
        self.message = message
        self.path = path


def _mark(node: yaml.Node) -> Pos:
    return node.start_mark.line + 1, node.start_mark.column + 1


_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_constructor = yaml.constructor.SafeConstructor()
_TAG = "tag:yaml.org,2002:"
_SCALAR_TAGS = {
    _TAG + "int": _constructor.construct_yaml_int,
    _TAG + "float": _constructor.construct_yaml_float,
    _TAG + "bool": _constructor.construct_yaml_bool,
    _TAG + "null": _constructor.construct_yaml_null,
}


@dataclass
class _Doc:
    """One parsed job file: plain data plus the position of every value and key."""

    file: str
    data: Any = None
    pos: dict[DocPath, Pos] = field(default_factory=dict)
    keypos: dict[DocPath, Pos] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def at(self, path: DocPath, *, key: bool = False) -> Pos:
        """Position of the value (or key) at ``path``; nearest existing ancestor otherwise."""
        if key and path in self.keypos:
            return self.keypos[path]
        while path not in self.pos and path:
            path = path[:-1]
        return self.pos.get(path, (1, 1))


class _Converter:
    """Turn a composed YAML node tree into plain data, recording positions, with limits."""

    def __init__(self, doc: _Doc) -> None:
        self.doc = doc
        self.count = 0
        self.active: set[int] = set()

    def convert(self, node: yaml.Node, path: DocPath) -> Any:
        self.count += 1
        if self.count > MAX_YAML_NODES:
            raise _YamlProblem(
                node,
                f"document expands to more than {MAX_YAML_NODES} values (alias bomb?)",
            )
        self.doc.pos[path] = _mark(node)
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node, path)
        if id(node) in self.active:
            raise _YamlProblem(node, "recursive alias: a value contains itself", path)
        if len(path) > MAX_DEPTH:
            raise _YamlProblem(node, f"nested more than {MAX_DEPTH} levels deep", path)
        self.active.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                if node.tag != _TAG + "seq":
                    raise _YamlProblem(node, f"YAML tag {node.tag} is not supported", path)
                return [self.convert(child, (*path, i)) for i, child in enumerate(node.value)]
            if isinstance(node, yaml.MappingNode):
                if node.tag != _TAG + "map":
                    raise _YamlProblem(node, f"YAML tag {node.tag} is not supported", path)
                return self.mapping(node, path)
        finally:
            self.active.discard(id(node))
        raise _YamlProblem(node, "unsupported YAML node")  # pragma: no cover

    def mapping(self, node: yaml.MappingNode, path: DocPath) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _TAG + "merge":
                self.problem(
                    key_node, path, "YAML merge keys (<<) are not supported; use defaults:"
                )
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self.problem(key_node, path, "a key must be a plain string, not a list or mapping")
                continue
            key = str(key_node.value)
            child = (*path, key)
            if key in result:
                first = self.doc.keypos[child]
                self.problem(key_node, child, f"duplicate key {key!r} (first at line {first[0]})")
                continue
            self.doc.keypos[child] = _mark(key_node)
            result[key] = self.convert(value_node, child)
        return result

    def scalar(self, node: yaml.ScalarNode, path: DocPath) -> Any:
        tag = node.tag
        if tag == _TAG + "str":
            return node.value
        make = _SCALAR_TAGS.get(tag)
        if make is not None:
            value = make(node)
            if isinstance(value, float) and math.isfinite(value) and value.is_integer():
                return int(value)
            return value
        if tag == _TAG + "timestamp":
            return node.value  # a date is text to mmgen
        self.problem(node, path, f"YAML tag {tag} is not supported (plain values only)")
        return node.value

    def problem(self, node: yaml.Node, path: DocPath, message: str) -> None:
        line, col = _mark(node)
        self.doc.problems.append(Problem(self.doc.file, line, col, _dotted(path), message))


def _read_document(file: str) -> _Doc:
    """Read and parse one job file; problems are recorded in the returned document."""
    doc = _Doc(file)

    def fail(message: str, line: int = 1, col: int = 1) -> _Doc:
        doc.problems.append(Problem(file, line, col, "", message))
        return doc

    path = Path(file)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            return fail(f"file is {size} bytes; job files are limited to {MAX_FILE_BYTES} bytes")
        raw = path.read_bytes()
    except FileNotFoundError:
        return fail("no such file")
    except IsADirectoryError:  # pragma: no cover - folders are expanded before
        return fail("is a folder, not a file")
    except OSError as err:
        return fail(f"cannot read: {err.strerror or err}")
    if len(raw) > MAX_FILE_BYTES:  # grew since stat
        return fail(f"file is larger than {MAX_FILE_BYTES} bytes")
    if b"\x00" in raw:
        line = raw[: raw.index(b"\x00")].count(b"\n") + 1
        return fail("binary file (NUL byte): not a YAML job file", line)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        before = raw[: err.start]
        line = before.count(b"\n") + 1
        col = err.start - (before.rfind(b"\n") + 1) + 1
        return fail(f"not UTF-8 text (byte 0x{raw[err.start]:02x})", line, col)
    try:
        nodes = list(yaml.compose_all(text, Loader=_Loader))
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        message = err.problem or err.context or "invalid YAML"
        if err.problem and err.context and err.context_mark:
            where = f"line {err.context_mark.line + 1}, column {err.context_mark.column + 1}"
            message = f"{message} ({err.context} at {where})"
        if mark and _char_at(text, mark.line, mark.column) == "\t":
            message = "tab character: indent YAML with spaces"
        return fail(f"YAML syntax error: {message}", line, col)
    except yaml.YAMLError as err:
        return fail(f"YAML error: {err}")
    except RecursionError:
        return fail("nested too deeply")
    if not nodes:
        return fail("empty file: expected a job (a mapping with name, model, ...)")
    if len(nodes) > 1:
        line, col = _mark(nodes[1])
        return fail("more than one YAML document; put one job file per document", line, col)
    root = nodes[0]
    if not isinstance(root, yaml.MappingNode):
        line, col = _mark(root)
        if isinstance(root, yaml.ScalarNode) and root.tag == _TAG + "null":
            return fail(
                "empty document: expected a job (a mapping with name, model, ...)", line, col
            )
        return fail("a job file must be a mapping (name: ..., model: ...)", line, col)
    try:
        doc.data = _Converter(doc).convert(root, ())
    except _YamlProblem as err:
        doc.data = None
        doc.problems.append(Problem(file, *err.pos, _dotted(err.path), err.message))
        return doc
    return doc


def _char_at(text: str, line: int, column: int) -> str:
    lines = text.split("\n")
    if line < len(lines) and column < len(lines[line]):
        return lines[line][column]
    return ""


# --- messages ---------------------------------------------------------------------------------

_TYPE_NAMES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "array": "a list",
    "object": "a mapping",
    "null": "empty",
}


def _kind(value: Any) -> str:
    if value is None:
        return "empty (null)"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__  # pragma: no cover


def _truncate(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else f"{text[: limit - 1]}… ({len(text)} chars)"


def _show(value: Any) -> str:
    """A short, safe rendering of a value for messages (never a whole document or data URL)."""
    if isinstance(value, str):
        if value.startswith("data:") and len(value) > 40:
            return repr(value[: value.find(",") + 1] + "…")
        return repr(_truncate(value))
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return repr(value)
    if value is None:
        return "null"
    return _kind(value)


def _either(words: list[str]) -> str:
    if len(words) <= 2:
        return " or ".join(words)
    return f"{', '.join(words[:-1])} or {words[-1]}"


def _dotted(path: Iterable[str | int]) -> str:
    return ".".join(str(p) for p in path)


def _choices(values: Iterable[Any]) -> str:
    return ", ".join(str(v) if not isinstance(v, bool) else str(v).lower() for v in values)


_PATTERN_HINTS = {
    "name": "a job name is letters, digits, '.', '_' and '-', starting with a letter or digit, "
    "at most 128 characters (no ${...})",
    "output": "must be a relative path ending in .mp4, without '..'",
    "callback_url": "must be an http(s) URL",
}


# --- interpolation ----------------------------------------------------------------------------

_REF = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MATRIX_REF = re.compile(r"matrix\.([A-Za-z_][A-Za-z0-9_]*)")
_WHOLE_MATRIX = re.compile(r"\$\{matrix\.([A-Za-z_][A-Za-z0-9_]*)\}")


class _InterpolationError(ValueError):
    pass


def _interpolate_string(
    text: str,
    env: Mapping[str, str],
    matrix: Mapping[str, Any] | None,
    used: set[str],
) -> str:
    """Expand ``${VAR}``/``${matrix.VAR}``/``$${`` inside a string."""

    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "$${":
            return "${"
        inner = match.group(1)
        if inner is None:
            raise _InterpolationError("unclosed ${: write $${ for a literal ${")
        matrix_ref = _MATRIX_REF.fullmatch(inner)
        if matrix_ref:
            var = matrix_ref.group(1)
            if matrix is None:
                raise _InterpolationError(f"${{matrix.{var}}} cannot be used here")
            if var not in matrix:
                raise _InterpolationError(
                    f"${{matrix.{var}}}: the job has no matrix variable {var!r}"
                )
            used.add(var)
            value = matrix[var]
            return str(value).lower() if isinstance(value, bool) else str(value)
        if not _ENV_NAME.fullmatch(inner):
            raise _InterpolationError(
                f"${{{_truncate(inner, 30)}}} is not a valid reference "
                "(use ${VAR}, ${matrix.VAR}, or $${ for a literal ${)"
            )
        if inner not in env:
            raise _InterpolationError(f"environment variable {inner} is not set")
        return env[inner]

    return _REF.sub(replace, text)


# --- the checker ------------------------------------------------------------------------------

_IMAGE_KEYS = ("first_frame_image", "last_frame_image")


@dataclass
class _Candidate:
    spec: JobSpec | None  # None when the job has problems
    name: Any
    name_key: tuple[str, int, int, str]
    output: str | None
    output_key: tuple[str, int, int, str]


class _Checker:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self._problems: dict[tuple[str, int, int, str], tuple[str, list[str]]] = {}
        self.candidates: list[_Candidate] = []
        self.image_cache: dict[str, str | images.ImageError] = {}

    # problems, deduplicated by location and field (the first message wins; job names gathered)
    def add(self, problem: Problem, job: str | None = None) -> None:
        key = (problem.file, problem.line, problem.column, problem.field)
        entry = self._problems.get(key)
        if entry is None:
            entry = self._problems[key] = (problem.message, [])
        if job is not None and job not in entry[1]:
            entry[1].append(job)

    def problems(self) -> list[Problem]:
        out = []
        for (file, line, col, fld), (message, jobs) in self._problems.items():
            if jobs:
                more = f" and {len(jobs) - 2} more" if len(jobs) > 2 else ""
                label = "job" if len(jobs) == 1 else "jobs"
                names = ", ".join(_truncate(job, 40) for job in jobs[:2])
                message = f"{message} (in {label} {names}{more})"
            out.append(Problem(file, line, col, fld, message))
        return sorted(out)

    def valid_jobs(self) -> list[JobSpec]:
        return [c.spec for c in self.candidates if c.spec is not None]

    # files
    def find_files(self, paths: Sequence[str | Path]) -> list[str]:
        files: list[str] = []
        seen: set[Path] = set()

        def take(file: str) -> None:
            resolved = Path(file).resolve()
            if resolved not in seen:
                seen.add(resolved)
                files.append(file)

        for given in paths:
            path = Path(given)
            if path.is_dir():
                found = sorted(
                    p
                    for p in path.rglob("*")
                    if p.suffix.lower() in SPEC_SUFFIXES
                    and p.is_file()
                    and not any(part.startswith(".") for part in p.relative_to(path).parts)
                )
                if not found:
                    self.add(
                        Problem(str(given), 1, 1, "", "folder holds no job files (*.yaml, *.yml)")
                    )
                for p in found:
                    take(str(p))
            elif path.exists():
                take(str(given))
            else:
                self.add(Problem(str(given), 1, 1, "", "no such file or folder"))
        return files

    def check_file(self, file: str) -> None:
        doc = _read_document(file)
        for problem in doc.problems:
            self.add(problem)
        if doc.data is None:
            return
        # 1. the file's shape, as editors see it (root of job.json)
        bad_paths: list[DocPath] = []
        for error in _file_validator().iter_errors(doc.data):
            for loc_path, fld_path, message, key in self.render(error, doc.data, None):
                bad_paths.append(loc_path)
                line, col = doc.at(loc_path, key=key)
                self.add(Problem(file, line, col, _dotted(fld_path), message))
        data = doc.data
        if "jobs" in data or "defaults" in data:
            defaults = data.get("defaults")
            if not isinstance(defaults, dict):
                defaults = {}
            jobs = data.get("jobs")
            if not isinstance(jobs, list):
                return
            entries: list[tuple[DocPath, dict[str, Any]]] = [
                (("jobs", i), job) for i, job in enumerate(jobs) if isinstance(job, dict)
            ]
        else:
            defaults, entries = {}, [((), data)]
        for entry_path, entry in entries:
            matrix_path = (*entry_path, "matrix")
            matrix_ok = not any(p[: len(matrix_path)] == matrix_path for p in bad_paths)
            self.expand(doc, entry_path, entry, defaults, matrix_ok)

    # 2. expansion of one job entry
    def expand(
        self,
        doc: _Doc,
        entry_path: DocPath,
        entry: dict[str, Any],
        defaults: dict[str, Any],
        matrix_ok: bool,
    ) -> None:
        merged: dict[str, Any] = {}
        origin: dict[DocPath, DocPath] = {(): entry_path}
        for key, value in defaults.items():
            merged[key] = value
            origin[(key,)] = ("defaults", key)
        for key, value in entry.items():
            if key != "matrix":
                merged[key] = value
                origin[(key,)] = (*entry_path, key)
        base_name = merged.get("name")
        matrix = entry.get("matrix")
        matrix_path = (*entry_path, "matrix")
        combos: list[list[tuple[str, str, Any, DocPath]]] = [[]]
        if matrix is not None:
            if not matrix_ok or not isinstance(matrix, dict):
                return  # its shape was reported by the file check
            axes: list[list[tuple[str, str, Any, DocPath]]] = []
            for var, spec in matrix.items():
                if isinstance(spec, list):
                    axes.append(
                        [(var, str(i), v, (*matrix_path, var, i)) for i, v in enumerate(spec)]
                    )
                else:
                    axes.append([(var, lb, v, (*matrix_path, var, lb)) for lb, v in spec.items()])
            count = math.prod(len(axis) for axis in axes)
            if count > MAX_MATRIX_JOBS:
                line, col = doc.at(matrix_path)
                self.add(
                    Problem(
                        doc.file,
                        line,
                        col,
                        _dotted(matrix_path),
                        f"matrix makes {count} jobs; at most {MAX_MATRIX_JOBS} are allowed",
                    )
                )
                return
            combos = [list(c) for c in itertools.product(*axes)]
        used: set[str] = set()
        for combo in combos:
            self.expand_one(doc, entry_path, merged, origin, base_name, combo, used)
        if matrix is not None:
            for var in matrix:
                if var not in used:
                    line, col = doc.at((*matrix_path, var), key=True)
                    self.add(
                        Problem(
                            doc.file,
                            line,
                            col,
                            _dotted((*matrix_path, var)),
                            f"matrix variable {var!r} is not used: write ${{matrix.{var}}} "
                            "in a value, or every combination is the same job",
                        )
                    )

    def expand_one(
        self,
        doc: _Doc,
        entry_path: DocPath,
        merged: dict[str, Any],
        base_origin: dict[DocPath, DocPath],
        base_name: Any,
        combo: list[tuple[str, str, Any, DocPath]],
        used: set[str],
    ) -> None:
        origin = dict(base_origin)
        display: dict[DocPath, str] = {}
        name: Any = base_name
        if combo and isinstance(base_name, str):
            name = "-".join([base_name, *(label for _, label, _, _ in combo)])
        job_label = name if isinstance(name, str) else f"#{entry_path[-1] if entry_path else 0}"
        count_before = len(self._problems)
        failed = False

        def problem(
            exp_path: DocPath, message: str, *, key: bool = False, fld: DocPath | None = None
        ) -> None:
            nonlocal failed
            failed = True
            doc_path = _resolve(origin, exp_path)
            line, col = doc.at(doc_path, key=key)
            field_path = doc_path if fld is None else _resolve(origin, fld)
            outside = doc_path[: len(entry_path)] != entry_path or (
                bool(combo) and "matrix" not in doc_path
            )
            self.add(
                Problem(doc.file, line, col, _dotted(field_path), message),
                job_label if outside or combo else None,
            )

        # matrix values: environment interpolation only
        values: dict[str, Any] = {}
        value_paths: dict[str, DocPath] = {}
        for var, _label, value, value_path in combo:
            value_paths[var] = value_path
            if isinstance(value, str) and "$" in value:
                try:
                    values[var] = _interpolate_string(value, self.env, None, set())
                except _InterpolationError as err:
                    line, col = doc.at(value_path)
                    self.add(Problem(doc.file, line, col, _dotted(value_path), str(err)))
                    failed = True
                    values[var] = value
            else:
                values[var] = value

        def walk(value: Any, exp_path: DocPath) -> Any:
            if isinstance(value, str):
                if "$" not in value:
                    return value
                whole = _WHOLE_MATRIX.fullmatch(value)
                if whole and whole.group(1) in values:
                    var = whole.group(1)
                    used.add(var)
                    origin[exp_path] = value_paths[var]
                    return values[var]
                try:
                    expanded = _interpolate_string(value, self.env, values, used)
                except _InterpolationError as err:
                    problem(exp_path, str(err))
                    return value
                if expanded != value:
                    display[exp_path] = value
                return expanded
            if isinstance(value, list):
                return [walk(v, (*exp_path, i)) for i, v in enumerate(value)]
            if isinstance(value, dict):
                return {k: walk(v, (*exp_path, k)) for k, v in value.items()}
            return value

        job: dict[str, Any] = {}
        for key, value in merged.items():
            job[key] = name if key == "name" else walk(value, (key,))

        # the complete job against its model's rules
        errors = list(_job_validator().iter_errors(job))
        model_broken = any(
            tuple(e.absolute_path) == ("model",)
            or (e.validator == "required" and not e.absolute_path and "model" not in job)
            for e in errors
        )
        bad: set[DocPath] = set()
        for error in errors:
            if model_broken and isinstance(error, _UnknownKey) and len(error.absolute_path) == 1:
                continue  # without a model there are no rules to call a key unknown by
            for loc_path, fld_path, message, at_key in self.render(error, job, display):
                problem(loc_path, message, key=at_key, fld=fld_path)
                bad.add(loc_path)

        # images (not where the schema already found a problem, e.g. a key the model lacks)
        for exp_path, value in _image_slots(job):
            if any(exp_path[:i] in bad for i in range(1, len(exp_path) + 1)):
                continue
            try:
                kind = images.classify(value)
                if kind == "url":
                    continue
                if kind == "data":
                    cached = self.image_cache.get(value)
                    if cached is None:
                        try:
                            images.check_data_url(value)
                            cached = value
                        except images.ImageError as err:
                            cached = err
                        self.image_cache[value] = cached
                else:
                    file_path = Path(value)
                    if not file_path.is_absolute():
                        file_path = Path(doc.file).parent / file_path
                    cache_key = f"path:{file_path.resolve()}"
                    cached = self.image_cache.get(cache_key)
                    if cached is None:
                        try:
                            cached = images.load_local_image(file_path, value)
                        except images.ImageError as err:
                            cached = err
                        self.image_cache[cache_key] = cached
                if isinstance(cached, images.ImageError):
                    raise cached
                _set_at(job, exp_path, cached)
                display.setdefault(exp_path, value)
            except images.ImageError as err:
                problem(exp_path, str(err))

        if not isinstance(name, str):
            return
        output = job.get("output")
        if output is None:
            output = f"{name}.mp4"
            output_path: DocPath = _resolve(origin, ("name",))
        else:
            output_path = _resolve(origin, ("output",))
        name_path = _resolve(origin, ("name",))
        spec: JobSpec | None = None
        if not failed and len(self._problems) == count_before:
            body = {k: v for k, v in job.items() if k not in ("name", "output")}
            spec = JobSpec(
                name=name,
                file=doc.file,
                line=doc.at(entry_path)[0],
                body=body,
                spec_hash=spec_hash(body),
                output=output if isinstance(output, str) else f"{name}.mp4",
            )
        self.candidates.append(
            _Candidate(
                spec,
                name,
                (doc.file, *doc.at(name_path), _dotted(name_path)),
                output if isinstance(output, str) else None,
                (doc.file, *doc.at(output_path), _dotted(output_path)),
            )
        )

    # 3. across files
    def check_unique(self) -> None:
        names: dict[str, _Candidate] = {}
        outputs: dict[str, _Candidate] = {}
        for cand in self.candidates:
            clash = False
            first = names.setdefault(cand.name.casefold(), cand)
            if first is not cand:
                file, line, col, fld = cand.name_key
                where = f"{first.name_key[0]}:{first.name_key[1]}"
                self.add(
                    Problem(
                        file, line, col, fld, f"duplicate job name {cand.name!r} (also at {where})"
                    )
                )
                clash = True
            if cand.output is not None:
                norm = os.path.normpath(cand.output).casefold()
                other = outputs.setdefault(norm, cand)
                if other is not cand and not clash:
                    file, line, col, fld = cand.output_key
                    where = f"{other.output_key[0]}:{other.output_key[1]}"
                    self.add(
                        Problem(
                            file,
                            line,
                            col,
                            fld,
                            f"output {cand.output!r} is also the output of job "
                            f"{other.name!r} ({where})",
                        )
                    )
                    clash = True
            if clash:
                cand.spec = None

    # schema errors -> (path, field, message, at_key)
    def render(
        self,
        error: ValidationError,
        instance_root: Any,
        display: dict[DocPath, str] | None,
    ) -> list[tuple[DocPath, DocPath, str, bool]]:
        path: DocPath = tuple(error.absolute_path)
        shown = _show(error.instance)
        if display is not None and path in display:
            shown = repr(_truncate(display[path]))
        model = instance_root.get("model") if isinstance(instance_root, dict) else None
        schema_path = list(error.absolute_schema_path)
        rule = ""
        if display is not None and "then" in schema_path and isinstance(model, str):
            rule = f" for {model}"
            if schema_path.count("then") >= 2 and isinstance(instance_root.get("resolution"), str):
                rule += f" at {instance_root['resolution']}"
        last = path[-1] if path else ""
        kw = str(error.validator)
        value: Any = error.validator_value
        instance: Any = error.instance
        schema: dict[str, Any] = error.schema if isinstance(error.schema, dict) else {}

        if isinstance(error, _UnknownKey):
            full_job = display is not None and len(path) == 1 and isinstance(model, str)
            message = f"not a field of {model} (unknown key)" if full_job else "unknown key"
            if error.suggestion:
                message += f"; did you mean {error.suggestion!r}?"
            return [(path, path, message, True)]
        if kw == "required":
            missing = [k for k in value if isinstance(instance, dict) and k not in instance]
            out = []
            for k in missing:
                reason = f"required{rule}" if rule else "required"
                if k == "name" and not path:
                    reason = "required: every job needs a name"
                out.append((path, (*path, k), f"missing ({reason})", False))
            return out
        if kw in ("anyOf", "oneOf"):
            return self.render_any_of(error, instance_root, display)
        if "propertyNames" in schema_path:
            key = str(instance)
            if last == "matrix":
                message = (
                    f"{key!r} is not a valid matrix variable name "
                    "(letters, digits and _, not starting with a digit, at most 64)"
                )
            else:
                message = (
                    f"{key!r} is not a valid matrix label "
                    "(letters, digits, '.', '_' and '-', starting with a letter or digit, "
                    "at most 64)"
                )
            return [((*path, key), (*path, key), message, True)]
        if kw == "type":
            expected = value if isinstance(value, list) else [value]
            want = _either([_TYPE_NAMES.get(str(t), str(t)) for t in expected])
            message = f"must be {want}, not {_kind(instance)}"
        elif kw == "enum":
            if last == "model":
                message = f"{shown} is not a known model ({_choices(value)})"
            elif rule:
                message = f"{shown} is not allowed{rule} (one of: {_choices(value)})"
            else:
                message = f"{shown} is not one of: {_choices(value)}"
        elif kw == "const":
            if rule:
                message = f"{shown} is not allowed{rule} (only {_show(value)})"
            else:
                message = f"must be {_show(value)}, not {shown}"
        elif kw == "pattern":
            pattern_hint = _PATTERN_HINTS.get(str(last), f"does not match the pattern {value}")
            message = f"{shown}: {pattern_hint}"
        elif kw == "maxLength":
            message = f"is {len(instance)} characters long; at most {value} allowed{rule}"
        elif kw == "minLength":
            message = "must not be empty"
        elif kw == "minItems":
            if schema.get("maxItems") == value:
                message = f"must hold exactly {value} item{'s' if value != 1 else ''}{rule}"
            elif value == 1:
                message = "must not be empty"
            else:
                message = f"needs at least {value} items{rule}"
        elif kw == "maxItems":
            if schema.get("minItems") == value:
                items = f"{value} item{'s' if value != 1 else ''}"
                message = f"must hold exactly {items}{rule} (has {len(instance)})"
            else:
                message = f"holds {len(instance)} items; at most {value} allowed{rule}"
        elif kw == "minProperties":
            message = "must not be empty"
        else:
            message = f"is not valid ({kw}{rule})"
        return [(path, path, message, False)]

    def render_any_of(
        self,
        error: ValidationError,
        instance_root: Any,
        display: dict[DocPath, str] | None,
    ) -> list[tuple[DocPath, DocPath, str, bool]]:
        branches: dict[int, list[ValidationError]] = {}
        for sub in error.context or []:
            index = sub.relative_schema_path[0]
            if isinstance(index, int):
                branches.setdefault(index, []).append(sub)
        here = tuple(error.absolute_path)
        interpolated = _interpolated_def()
        candidates = [
            errs for errs in branches.values() if not any(e.schema == interpolated for e in errs)
        ]
        # prefer a branch whose failure is not a type mismatch of this very value
        for errs in candidates:
            if not any(e.validator == "type" and tuple(e.absolute_path) == here for e in errs):
                out: list[tuple[DocPath, DocPath, str, bool]] = []
                for sub in errs:
                    out.extend(self.render(sub, instance_root, display))
                return out
        wanted: list[str] = []
        for errs in candidates:
            for e in errs:
                if e.validator == "type":
                    raw: Any = e.validator_value
                    for t in raw if isinstance(raw, list) else [raw]:
                        type_name = _TYPE_NAMES.get(str(t), str(t))
                        if type_name not in wanted:
                            wanted.append(type_name)
        want = _either(wanted) or "valid"
        return [(here, here, f"must be {want}, not {_kind(error.instance)}", False)]


def _resolve(origin: Mapping[DocPath, DocPath], exp_path: DocPath) -> DocPath:
    """Map a path in the expanded job to the path of the value in the YAML document."""
    for i in range(len(exp_path), -1, -1):
        base = origin.get(exp_path[:i])
        if base is not None:
            return (*base, *exp_path[i:])
    return exp_path  # pragma: no cover - origin always has ()


def _image_slots(job: dict[str, Any]) -> Iterator[tuple[DocPath, str]]:
    """Every place of the job where the API takes an image, holding a non-empty string."""
    refs = job.get("subject_reference")
    if isinstance(refs, list):
        for i, ref in enumerate(refs):
            if isinstance(ref, dict) and isinstance(ref.get("image"), list):
                for j, image in enumerate(ref["image"]):
                    if isinstance(image, str) and image:
                        yield ("subject_reference", i, "image", j), image
    for key in _IMAGE_KEYS:
        value = job.get(key)
        if isinstance(value, str) and value:
            yield (key,), value


def _set_at(job: dict[str, Any], path: DocPath, value: Any) -> None:
    target: Any = job
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
