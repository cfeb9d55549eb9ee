"""Request bodies, checked with the very schema ``mmgen validate`` builds on.

``schemas/video_generation.request.json`` describes what the API accepts per model and tolerates
fields a model does not use (as MiniMax is believed to). The mock refuses what the schema refuses
(code 2013, naming the field) and journals the tolerated-but-unused fields of each task.
"""

from __future__ import annotations

import json
from functools import cache, lru_cache
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from mmgen.schemas import REQUEST_SCHEMA, load_schema, request_validator

_MAX_DETAIL = 160


def _short(text: str) -> str:
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 1] + "…"


def _field(error: ValidationError) -> str:
    path = ".".join(str(p) for p in error.absolute_path)
    if error.validator == "required" and isinstance(error.validator_value, list):
        instance = error.instance if isinstance(error.instance, dict) else {}
        missing = [k for k in error.validator_value if k not in instance]
        if missing:
            return f"{path}.{missing[0]}" if path else str(missing[0])
    return path


def _message(error: ValidationError) -> str:
    """jsonschema's message, without echoing a (possibly megabytes long) instance."""
    if error.validator in ("pattern", "enum", "const", "type", "maxLength", "minLength"):
        instance = error.instance
        shown = repr(instance) if not isinstance(instance, str) else repr(_short(instance))
        rules = {
            "pattern": f"does not match the pattern {error.validator_value}",
            "enum": f"is not one of {error.validator_value!r}",
            "const": f"must be {error.validator_value!r}",
            "type": f"is not of type {error.validator_value!r}",
            "maxLength": f"is longer than {error.validator_value} characters",
            "minLength": f"is shorter than {error.validator_value} characters",
        }
        return f"{_short(shown)} {rules[str(error.validator)]}"
    return _short(error.message)


def invalid_params(body: Any) -> str | None:
    """None when the body is acceptable; else the 2013 status_msg naming the field."""
    if not isinstance(body, dict):
        return "invalid params, the request body must be a JSON object"
    error = best_match(request_validator().iter_errors(body))
    if error is None:
        return None
    field = _field(error)
    detail = _message(error)
    return f"invalid params, {field}: {detail}" if field else f"invalid params, {detail}"


@cache
def _branches() -> list[tuple[Draft202012Validator, frozenset[str]]]:
    """Per ``allOf`` branch of the schema: its condition and the fields its model uses."""
    schema = load_schema(REQUEST_SCHEMA)
    defs = schema.get("$defs", {})
    out: list[tuple[Draft202012Validator, frozenset[str]]] = []
    for branch in schema.get("allOf", []):
        condition, then = branch.get("if"), branch.get("then", {})
        ref = then.get("$ref", "") if isinstance(then, dict) else ""
        target = defs.get(ref.rsplit("/", 1)[-1], then) if ref.startswith("#/$defs/") else then
        if isinstance(condition, dict) and isinstance(target, dict):
            names = frozenset(target.get("properties", {})) | frozenset(target.get("required", []))
            out.append((Draft202012Validator(condition), names))
    return out


def ignored_fields(body: dict[str, Any]) -> list[str]:
    """Top-level fields the request's model does not use (e.g. ``duration`` on S2V-01)."""
    # The branch conditions look at which keys exist and at short values (model, resolution...):
    # cache on exactly that, so a thousand creates of one kind evaluate them once.
    shape = json.dumps(
        {
            k: v
            if isinstance(v, bool | int | float) or (isinstance(v, str) and len(v) <= 64)
            else type(v).__name__
            for k, v in body.items()
        },
        sort_keys=True,
    )
    return list(_ignored_fields(shape))


@lru_cache(maxsize=1024)
def _ignored_fields(shape: str) -> tuple[str, ...]:
    body = json.loads(shape)
    known = set(load_schema(REQUEST_SCHEMA).get("properties", {}))
    for condition, names in _branches():
        if condition.is_valid(body):
            known |= names
    return tuple(sorted(k for k in body if k not in known))
