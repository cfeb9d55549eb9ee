"""The JSON Schemas of ``schemas/`` and the machinery that checks documents against them.

The same machinery serves job files (``mmgen validate``) and the mock server's config file, so
both report problems the same way, one per line: ``FILE:LINE:COL: FIELD: message``.

- :mod:`~mmgen.schemas.catalog`: the shipped schema files, their registry, plain validators.
- :mod:`~mmgen.schemas.documents`: YAML/JSON files -> data plus the position of every value.
- :mod:`~mmgen.schemas.unknown_keys`: a strict validator, one error per unknown key.
- :mod:`~mmgen.schemas.messages`: schema errors -> readable, located problems.
- :mod:`~mmgen.schemas.compiled`: "is it valid?" in microseconds (jsonschema-rs), so that only
  an invalid document is walked by jsonschema for its messages.

Checking a config file against a shipped schema (here ``mock_config.json``)::

    from mmgen.errors import Problem
    from mmgen.schemas import load_document, schema_problems, strict_validator

    def config_problems(path: str) -> tuple[dict | None, list[Problem]]:
        data, positions, problems = load_document(path)      # YAML, or JSON by suffix
        if data is not None:
            problems += schema_problems(path, data, positions, strict_validator("mock_config.json"))
        return (data if not problems else None), problems

    # each problem prints as  mock.yaml:4:12: faults.rate_limit: must be a number, not a string
"""

from __future__ import annotations

from mmgen.schemas.catalog import (
    JOB_SCHEMA,
    REQUEST_SCHEMA,
    bundled_schema,
    load_schema,
    registry,
    request_validator,
    schema_dir,
    schema_id,
    schema_names,
    validator,
)
from mmgen.schemas.documents import DocumentKind, Positions, load_document
from mmgen.schemas.messages import RenderContext, schema_problems
from mmgen.schemas.unknown_keys import UnknownKeyError, strict_validator

__all__ = [
    "JOB_SCHEMA",
    "REQUEST_SCHEMA",
    "DocumentKind",
    "Positions",
    "RenderContext",
    "UnknownKeyError",
    "bundled_schema",
    "load_document",
    "load_schema",
    "registry",
    "request_validator",
    "schema_dir",
    "schema_id",
    "schema_names",
    "schema_problems",
    "strict_validator",
    "validator",
]
