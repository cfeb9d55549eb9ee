"""One located error per unknown key, with a "did you mean", using public jsonschema API only.

Standard jsonschema reports ``additionalProperties: false`` and ``unevaluatedProperties: false``
as one error on the whole mapping. :func:`strict_validator` extends the Draft 2020-12 validator
(``jsonschema.validators.extend``) so that each key no applicable subschema declares is its own
:class:`UnknownKeyError`, located at the key, with a close match among the keys that would be
accepted there.

Which keys a subschema "evaluates" is computed by walking the schema here (:func:`known_keys`):
``$ref`` is resolved through the :mod:`referencing` registry's public resolver, and each
``if``/``anyOf``/``oneOf`` branch is tried with a validator of its own: built on the branch
itself when it refers to nothing (most do, and this is fast), else on a ``$ref`` to the
branch's URI, so the relative references inside it resolve against its own file.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from difflib import get_close_matches
from functools import cache
from typing import Any, cast

from jsonschema import Draft202012Validator, ValidationError, validators
from jsonschema.protocols import Validator
from referencing.exceptions import Unresolvable

from mmgen.schemas.catalog import load_schema, registry, schema_id, schema_names

__all__ = ["UnknownKeyError", "known_keys", "strict_validator", "strict_validator_of"]


class UnknownKeyError(ValidationError):
    """One key that no applicable subschema declares (located at the key)."""

    suggestion: str | None = None
    """A close match that would be accepted in its place, if any."""


@cache
def _locations() -> dict[int, tuple[str, str]]:
    """Every subschema of the registered schemas (by identity) -> (resource URI, JSON pointer).

    The registry holds each schema once (cached), and jsonschema hands keyword functions the
    very dicts it holds, so identity finds where a subschema lives without private state.
    """
    found: dict[int, tuple[str, str]] = {}

    def walk(node: Any, uri: str, pointer: str) -> None:
        if isinstance(node, dict):
            found.setdefault(id(node), (uri, pointer))
            for key, value in node.items():
                escaped = str(key).replace("~", "~0").replace("/", "~1")
                walk(value, uri, f"{pointer}/{escaped}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, uri, f"{pointer}/{index}")

    shared = registry()
    for uri in shared:
        walk(shared[uri].contents, uri, "")
    return found


@cache
def _validator_at(uri: str) -> Validator:
    return cast(Validator, Draft202012Validator({"$ref": uri}, registry=registry()))


def _has_reference(schema: Any) -> bool:
    if isinstance(schema, dict):
        return any(k in ("$ref", "$dynamicRef") or _has_reference(v) for k, v in schema.items())
    if isinstance(schema, list):
        return any(_has_reference(v) for v in schema)
    return False


_self_contained: dict[int, tuple[Any, Validator | None]] = {}
"""id of a subschema -> (the subschema, kept alive so its id stays its own; its validator)."""


def _is_valid(instance: Any, schema: Any) -> bool:
    """Whether ``instance`` holds against ``schema``, a subschema of a registered schema."""
    if isinstance(schema, bool):
        return schema
    key = id(schema)
    if key not in _self_contained:  # most branches (``if: {model: ...}``) refer to nothing
        plain = not _has_reference(schema)
        made = cast(Validator, Draft202012Validator(schema)) if plain else None
        _self_contained[key] = (schema, made)
    validator = _self_contained[key][1]
    if validator is not None:
        return validator.is_valid(instance)
    where = _locations().get(key)
    if where is None:  # a schema outside the registry: its refs are absolute or local
        return bool(Draft202012Validator(schema, registry=registry()).is_valid(instance))
    return _validator_at(f"{where[0]}#{where[1]}").is_valid(instance)


_resolved: dict[tuple[str, str], Any] = {}


def _resolve(schema: dict[str, Any], ref: str) -> Any:
    base = _locations().get(id(schema), ("", ""))[0]
    key = (base, ref)
    if key not in _resolved:
        try:
            _resolved[key] = registry().resolver(base_uri=base).lookup(ref).contents
        except Unresolvable:
            _resolved[key] = None
    return _resolved[key]


def known_keys(instance: dict[str, Any], schema: Any) -> set[str]:
    """Keys of ``instance`` that some applicable subschema of ``schema`` declares.

    As ``unevaluatedProperties`` defines it, with one deliberate difference: every ``allOf``
    branch counts even when it fails, so a key the model's rules declare is not also called
    "unknown" because another of its values is wrong (that failure is reported on its own).
    ``anyOf``/``oneOf`` branches count only when they hold; ``if`` selects ``then``/``else``.
    """
    if not isinstance(schema, dict):
        return set()
    keys: set[str] = set()
    for ref_keyword in ("$ref", "$dynamicRef"):
        ref = schema.get(ref_keyword)
        if isinstance(ref, str):
            keys |= known_keys(instance, _resolve(schema, ref))
    properties = schema.get("properties")
    if isinstance(properties, dict):
        keys |= properties.keys() & instance.keys()
    for keyword in ("additionalProperties", "unevaluatedProperties"):
        if keyword in schema:
            keys |= {k for k, v in instance.items() if _is_valid(v, schema[keyword])}
    for pattern in schema.get("patternProperties", {}):
        keys |= {k for k in instance if re.search(pattern, k)}
    for branch in schema.get("allOf", []):
        keys |= known_keys(instance, branch)
    for keyword in ("anyOf", "oneOf"):
        for branch in schema.get(keyword, []):
            if _is_valid(instance, branch):
                keys |= known_keys(instance, branch)
    if "if" in schema:
        chosen = "then" if _is_valid(instance, schema["if"]) else "else"
        if chosen == "then":
            keys |= known_keys(instance, schema["if"])
        keys |= known_keys(instance, schema.get(chosen, {}))
    return keys


@cache
def _all_property_names() -> tuple[str, ...]:
    """Every property name the schemas declare (candidates for "did you mean")."""
    names: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            props = node.get("properties")
            if isinstance(props, dict):
                names.update(props)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for name in schema_names():
        walk(load_schema(name))
    return tuple(sorted(names))


def unknown_key_error(key: str, instance: dict[str, Any], schema: Any) -> UnknownKeyError:
    """The error for one unknown key, with a "did you mean" among the keys allowed here."""
    error = UnknownKeyError(f"unknown key {key!r}", path=[key])
    own = schema.get("properties") if isinstance(schema, dict) else None
    names = sorted({*_all_property_names(), *(own if isinstance(own, dict) else ())})
    for candidate in get_close_matches(key, names, n=3, cutoff=0.7):
        trial = {**instance, candidate: None}
        if candidate not in instance and candidate in known_keys(trial, schema):
            error.suggestion = candidate
            break
    return error


_STANDARD = Draft202012Validator.VALIDATORS


def _unevaluated_properties(
    validator: Any, value: Any, instance: Any, schema: dict[str, Any]
) -> Iterator[ValidationError]:
    if value is not False or not isinstance(instance, dict):
        yield from _STANDARD["unevaluatedProperties"](validator, value, instance, schema)
        return
    known = known_keys(instance, schema)
    for key in instance:
        if key not in known:
            yield unknown_key_error(key, instance, schema)


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
            yield unknown_key_error(key, instance, schema)


_StrictValidator: Any = validators.extend(  # type: ignore[no-untyped-call]
    Draft202012Validator,
    {
        "unevaluatedProperties": _unevaluated_properties,
        "additionalProperties": _additional_properties,
    },
)


@cache
def strict_validator(name: str, pointer: str = "") -> Validator:
    """A validator of the named schema (at a JSON pointer inside it, e.g. ``/$defs/job``) that
    reports each unknown key as its own :class:`UnknownKeyError`."""
    Draft202012Validator.check_schema(load_schema(name))
    ref = f"{schema_id(name)}#{pointer}" if pointer else schema_id(name)
    return cast(Validator, _StrictValidator({"$ref": ref}, registry=registry()))


def strict_validator_of(schema: dict[str, Any]) -> Validator:
    """A strict validator (one :class:`UnknownKeyError` per unknown key) of a self-contained
    schema built at run time (a model a project declares); it may refer to nothing else."""
    Draft202012Validator.check_schema(schema)
    return cast(Validator, _StrictValidator(schema))
