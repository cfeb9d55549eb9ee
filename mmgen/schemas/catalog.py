"""The JSON Schemas shipped with mmgen: find them, parse them, register them, build validators.

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
from referencing.jsonschema import DRAFT202012

#: File names of the schemas (inside ``schemas/``).
REQUEST_SCHEMA = "video_generation.request.json"
JOB_SCHEMA = "job.json"


def schema_dir() -> Traversable:
    """The folder holding the schemas: packaged copy first, repository checkout second."""
    packaged = resources.files("mmgen") / "_schemas"
    if packaged.is_dir():
        return packaged
    checkout = Path(__file__).resolve().parents[2] / "schemas"
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError("mmgen's JSON Schemas are missing from this installation")


@cache
def load_schema(name: str) -> dict[str, Any]:
    """Parse one schema file by name (e.g. ``job.json``)."""
    data: dict[str, Any] = json.loads((schema_dir() / name).read_text(encoding="utf-8"))
    return data


def schema_names() -> list[str]:
    """The file names of every shipped schema, sorted."""
    return sorted(entry.name for entry in schema_dir().iterdir() if entry.name.endswith(".json"))


def schema_id(name: str) -> str:
    """The ``$id`` of the named schema (what ``$ref`` uses to point at it)."""
    return str(load_schema(name)["$id"])


@cache
def registry() -> Registry[Any]:
    """A registry of every schema by its ``$id``, so cross-file ``$ref`` resolve offline.

    Each resource is registered as Draft 2020-12 *without* its ``$schema`` keyword: jsonschema
    picks the validator class of a referenced resource from ``$schema``, and without it a
    ``$ref`` into another file keeps the class that follows it (the strict class of
    :func:`mmgen.schemas.strict_validator`, which reports one error per unknown key). Every
    schema file declares Draft 2020-12 (checked by :func:`validator`).
    """
    resources_: list[tuple[str, Resource[Any]]] = []
    for name in schema_names():
        contents = {k: v for k, v in load_schema(name).items() if k != "$schema"}
        resources_.append((schema_id(name), DRAFT202012.create_resource(contents)))
    return Registry().with_resources(resources_).crawl()


@cache
def validator(name: str) -> Draft202012Validator:
    """A Draft 2020-12 validator for the named schema, with cross-file refs resolved."""
    schema = load_schema(name)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, registry=registry())


def bundled_schema(name: str = JOB_SCHEMA) -> dict[str, Any]:
    """The named schema with the schemas it refers to embedded under ``$defs`` (their ``$id``
    kept), a self-contained Draft 2020-12 compound document that editors and other tools can
    use without fetching anything (``mmgen schema`` prints it)."""
    bundle = dict(load_schema(name))
    defs = dict(bundle.get("$defs", {}))
    for other in _referenced(name):
        embedded = dict(load_schema(other))
        embedded.pop("$schema", None)  # an embedded resource uses the bundle's dialect
        defs[other] = embedded
    bundle["$defs"] = defs
    return bundle


def _referenced(name: str) -> list[str]:
    """The other schema files ``name`` refers to, directly or through each other, sorted."""
    found: set[str] = set()
    pending = [name]
    while pending:
        refs = _refs(load_schema(pending.pop()))
        for other in schema_names():
            targets = (other, schema_id(other))
            if other != name and other not in found and any(r in targets for r in refs):
                found.add(other)
                pending.append(other)
    return sorted(found)


def _refs(node: Any) -> set[str]:
    """The documents (the part before ``#``) of every ``$ref`` inside a schema."""
    if isinstance(node, list):
        return {ref for item in node for ref in _refs(item)}
    if not isinstance(node, dict):
        return set()
    found = {ref for item in node.values() for ref in _refs(item)}
    ref = node.get("$ref")
    if isinstance(ref, str) and not ref.startswith("#"):
        found.add(ref.split("#", 1)[0])
    return found


def request_validator() -> Draft202012Validator:
    """Validator of the API request body (what the API accepts, tolerant of unused fields)."""
    return validator(REQUEST_SCHEMA)
