"""Access to the JSON Schemas in ``schemas/``, the single source of truth for job files.

The schemas ship inside the installed package (``mmgen/_schemas``, see pyproject.toml); in a
source checkout or an editable install they are read from the repository's ``schemas/`` folder.
The mock server validates request bodies with the very same files.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

#: File names of the schemas (inside ``schemas/``).
REQUEST_SCHEMA = "video_generation.request.json"
JOB_SCHEMA = "job.json"


def schema_dir() -> Traversable:
    """The folder holding the schemas: packaged copy first, repository checkout second."""
    packaged = resources.files("mmgen") / "_schemas"
    if packaged.is_dir():
        return packaged
    checkout = Path(__file__).resolve().parent.parent / "schemas"
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError("mmgen's JSON Schemas are missing from this installation")


@cache
def load_schema(name: str) -> dict[str, Any]:
    """Parse one schema file by name (e.g. ``job.json``)."""
    data: dict[str, Any] = json.loads((schema_dir() / name).read_text(encoding="utf-8"))
    return data


@cache
def registry() -> Registry[Any]:
    """A registry of every schema by its ``$id``, so cross-file ``$ref`` resolve offline."""
    resources_: list[tuple[str, Resource[Any]]] = []
    for entry in schema_dir().iterdir():
        if entry.name.endswith(".json"):
            contents = load_schema(entry.name)
            resources_.append((contents["$id"], Resource.from_contents(contents)))
    return Registry().with_resources(resources_).crawl()


@cache
def validator(name: str) -> Draft202012Validator:
    """A Draft 2020-12 validator for the named schema, with cross-file refs resolved."""
    schema = load_schema(name)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, registry=registry())


def bundled_schema(name: str = JOB_SCHEMA) -> dict[str, Any]:
    """The named schema with every other schema embedded under ``$defs`` (their ``$id`` kept),
    a self-contained Draft 2020-12 compound document that editors and other tools can use
    without fetching anything (``mmgen schema`` prints it)."""
    bundle = dict(load_schema(name))
    defs = dict(bundle.get("$defs", {}))
    for entry in sorted(schema_dir().iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".json") and entry.name != name:
            embedded = dict(load_schema(entry.name))
            embedded.pop("$schema", None)  # an embedded resource uses the bundle's dialect
            defs[entry.name] = embedded
    bundle["$defs"] = defs
    return bundle


def request_validator() -> Draft202012Validator:
    """Validator of the API request body (what the API accepts, tolerant of unused fields)."""
    return validator(REQUEST_SCHEMA)


def job_validator() -> Draft202012Validator:
    """Validator of one expanded job (strict: unknown keys are rejected)."""
    return validator(JOB_SCHEMA)
