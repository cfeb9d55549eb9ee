"""A compiled answer to "is this document valid?" against a shipped schema (jsonschema-rs).

The messages of :mod:`mmgen.schemas.messages` come from jsonschema's errors, which cost
~0.3 ms per job to collect even when there is none (every model's ``if``, ``$ref`` lookups in
the registry, the strict unknown-key walk). Most documents are valid: :func:`compiled_check`
answers that in a few microseconds, and only a document it does not call valid goes the
error-collecting way, so the problems reported are exactly jsonschema's.

Why a valid verdict here is jsonschema's verdict too:

- standard Draft 2020-12 ``unevaluatedProperties: false`` and the strict validator's
  (:func:`~mmgen.schemas.unknown_keys.strict_validator`) reject the same keys of a valid
  document (they differ only in which failing ``allOf`` branches count, and a valid document
  has none);
- the shipped schemas use no ``format``; their regular expressions mean the same in both
  engines except that Python's ``$`` also matches before a final newline (jsonschema accepts
  more there: such a document just takes the slow way) and that Python's ``\\s`` also matches
  U+001C..U+001F: a document holding one of those (as ``repr`` escapes them, which also
  catches the harmless text ``\\x1c``) never takes the fast way;
- anything the compiled validator cannot take (a YAML date, a huge integer, a non-string key)
  raises, which is "not known valid" too.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache
from typing import Any

import jsonschema_rs

from mmgen.schemas.catalog import load_schema, schema_id, schema_names

__all__ = ["compiled_check", "compiled_check_of"]

_SEPARATORS = re.compile(r"\\x1[c-f]")
"""U+001C..U+001F as ``repr`` writes them (one C-speed pass over the whole document)."""


@cache
def _registry() -> jsonschema_rs.Registry:
    resources = []
    for name in schema_names():
        contents = {k: v for k, v in load_schema(name).items() if k != "$schema"}
        resources.append((schema_id(name), contents))
    return jsonschema_rs.Registry(resources, draft=jsonschema_rs.Draft202012)


@cache
def compiled_check(name: str, pointer: str = "") -> Callable[[Any], bool]:
    """``check(document)``: True only when ``document`` is valid against the named schema (at
    a JSON pointer inside it, e.g. ``/$defs/job``) for jsonschema too; False means "unknown"."""
    ref = f"{schema_id(name)}#{pointer}" if pointer else schema_id(name)
    validator = jsonschema_rs.Draft202012Validator(
        {"$ref": ref}, registry=_registry(), validate_formats=False
    )
    return _check(validator)


def compiled_check_of(schema: dict[str, Any]) -> Callable[[Any], bool]:
    """:func:`compiled_check` of a self-contained schema built at run time (a model a project
    declares, :func:`~mmgen.schemas.unknown_keys.strict_validator_of`'s)."""
    return _check(jsonschema_rs.Draft202012Validator(schema, validate_formats=False))


def _check(validator: jsonschema_rs.Validator) -> Callable[[Any], bool]:
    def check(document: Any) -> bool:
        try:
            return bool(validator.is_valid(document)) and not _SEPARATORS.search(repr(document))
        except (ValueError, TypeError, OverflowError):
            return False

    return check
