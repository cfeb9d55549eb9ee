"""Models a project declares: a new MiniMax model needs no new mmgen release.

A project file, ``mmgen.yaml`` in the folder of the job files or one of its parents (the first
found, not above a ``.git`` folder), or the file given with ``--models FILE``, declares models
this release does not know, checked against ``schemas/models.json``::

    models:
      MiniMax-Hailuo-3:
        camera_commands: true
        required: [prompt]
        fields:
          duration: {type: integer, enum: [6, 10]}
          resolution: {type: string, enum: [768P, 1080P]}
          first_frame_image: {type: image}
        rules:
          - if: {resolution: 1080P}
            then: {duration: [6]}

A declared model's jobs may set ``model``, ``prompt``, ``prompt_optimizer``, ``callback_url``,
``aigc_watermark`` and its declared fields; unknown keys are rejected as for any model, and the
rules are checked with the same messages (``10 is not allowed for MiniMax-Hailuo-3 (only 6)``).
``validate``, ``plan`` (priced by ``--prices``) and ``run`` then accept its jobs. A model that
is neither known nor declared stays an error with "did you mean". A declaration never changes a
model mmgen knows: declaring one is a problem.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from jsonschema.protocols import Validator

from mmgen.errors import Problem
from mmgen.schemas import (
    JOB_SCHEMA,
    REQUEST_SCHEMA,
    load_document,
    load_schema,
    schema_problems,
    strict_validator,
)
from mmgen.schemas.documents import DocumentKind
from mmgen.schemas.unknown_keys import strict_validator_of

__all__ = [
    "MODELS_SCHEMA",
    "PROJECT_FILE",
    "DeclaredModel",
    "ModelCatalog",
    "find_project_file",
    "load_models",
]

PROJECT_FILE = "mmgen.yaml"
"""The project file's name (never read as a job file)."""
MODELS_SCHEMA = "models.json"
IMAGE_FIELDS = ("first_frame_image", "last_frame_image")
"""The image fields a declared model may have: mmgen checks them and sends data URLs."""

_KIND = DocumentKind(
    noun="project file", expected="a mapping with models:", shape="models: {NAME: {...}}"
)
_TYPES: dict[str, dict[str, Any]] = {
    "string": {"type": "string"},
    "integer": {"type": "integer"},
    "number": {"type": "number"},
    "boolean": {"type": "boolean"},
    "image": {"type": "string", "minLength": 1},
}


@dataclass(frozen=True)
class DeclaredModel:
    """One declared model: its own fields, required fields, rules, camera commands."""

    name: str
    fields: Mapping[str, Mapping[str, Any]]
    required: tuple[str, ...] = ()
    rules: tuple[Mapping[str, Any], ...] = ()
    camera_commands: bool = False

    def job_schema(self) -> dict[str, Any]:
        """A self-contained JSON Schema of one complete job of this model (name and output
        included), strict about unknown keys."""
        job_defs = load_schema(JOB_SCHEMA)["$defs"]
        common = load_schema(REQUEST_SCHEMA)["properties"]
        properties: dict[str, Any] = {
            "name": job_defs["name"],
            "output": job_defs["output"],
            **{key: value for key, value in common.items() if key != "model"},
            "model": {"const": self.name},
        }
        for key, spec in self.fields.items():
            own: dict[str, Any] = dict(_TYPES[spec["type"]])
            for word in ("enum", "minimum", "maximum"):
                if word in spec:
                    own[word] = spec[word]
            if "max_length" in spec:
                own["maxLength"] = spec["max_length"]
            properties[key] = own
        rules = [
            {
                "if": {
                    "properties": {k: {"const": v} for k, v in rule["if"].items()},
                    "required": list(rule["if"]),
                },
                "then": {"properties": {k: {"enum": v} for k, v in rule["then"].items()}},
            }
            for rule in self.rules
        ]
        schema: dict[str, Any] = {
            "type": "object",
            "required": ["name", "model", *self.required],
            "properties": properties,
            "additionalProperties": False,
        }
        if rules:
            schema["allOf"] = rules
        return schema


@dataclass
class ModelCatalog:
    """The models a project declares (none by default), by name."""

    models: dict[str, DeclaredModel] = field(default_factory=dict)
    file: str | None = None

    def get(self, name: object) -> DeclaredModel | None:
        return self.models.get(name) if isinstance(name, str) else None

    @cached_property
    def field_names(self) -> frozenset[str]:
        """Every field some declared model takes."""
        return frozenset(key for model in self.models.values() for key in model.fields)

    def validator(self, name: str) -> Validator:
        """A strict validator of one complete job of the declared model ``name``."""
        if name not in self._validators:
            self._validators[name] = strict_validator_of(self.models[name].job_schema())
        return self._validators[name]

    @cached_property
    def _validators(self) -> dict[str, Validator]:
        return {}


def find_project_file(paths: Sequence[str | Path]) -> Path | None:
    """The ``mmgen.yaml`` of the first path: in its folder (a file's folder) or the nearest
    parent holding one, not above the repository root (a folder with ``.git``)."""
    for given in paths:
        path = Path(given).resolve()
        folder = path if path.is_dir() else path.parent
        for candidate in (folder, *folder.parents):
            if (candidate / PROJECT_FILE).is_file():
                return candidate / PROJECT_FILE
            if (candidate / ".git").exists():
                break
        return None
    return None


def load_models(path: str | Path) -> tuple[ModelCatalog, list[Problem]]:
    """The models declared by a project file, and its problems (then no model is declared)."""
    name = str(path)
    data, positions, problems = load_document(name, kind=_KIND)
    if data is None:
        return ModelCatalog(file=name), problems
    problems += schema_problems(name, data, positions, strict_validator(MODELS_SCHEMA))
    known = load_schema(REQUEST_SCHEMA)["properties"]["model"]["enum"]
    for model, spec in (data.get("models") or {}).items() if not problems else ():
        where = ("models", model)
        if model in known:
            message = f"{model} is a model mmgen knows: its rules cannot be declared again"
            problems.append(Problem(name, *positions.at(where, key=True), ".".join(where), message))
        for key, value in spec.get("fields", {}).items():
            if value["type"] == "image" and key not in IMAGE_FIELDS:
                at = (*where, "fields", key)
                message = f"an image field is {' or '.join(IMAGE_FIELDS)}, not {key!r}"
                problems.append(Problem(name, *positions.at(at, key=True), ".".join(at), message))
    if problems:
        return ModelCatalog(file=name), sorted(problems)
    models = {
        model: DeclaredModel(
            name=model,
            fields=spec.get("fields", {}),
            required=tuple(spec.get("required", ())),
            rules=tuple(spec.get("rules", ())),
            camera_commands=bool(spec.get("camera_commands", False)),
        )
        for model, spec in data["models"].items()
    }
    return ModelCatalog(models, name), []
