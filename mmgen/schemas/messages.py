"""Schema errors -> one readable, located message each (never jsonschema's raw wording).

:func:`render` turns one :class:`jsonschema.ValidationError` into :class:`Rendered` messages:
the path to locate (the value, or the key for an unknown key), the FIELD to show and the text.
Each JSON Schema keyword has its own small function in :data:`_MESSAGES`; ``anyOf``/``oneOf``
explain the branch the value came closest to. :func:`schema_problems` applies it to a whole
document with the positions of :func:`~mmgen.schemas.documents.load_document`.

What a format adds to the generic wording (what a pattern means, why a key is required, a
"for MODEL" suffix on model rules, the text written before ``${...}`` expansion) comes in a
:class:`RenderContext`; nothing here knows about job files.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from difflib import get_close_matches
from typing import Any, NamedTuple

from jsonschema import ValidationError
from jsonschema.protocols import Validator

from mmgen.errors import Problem
from mmgen.schemas.documents import DocPath, Positions, dotted
from mmgen.schemas.unknown_keys import UnknownKeyError, known_keys

__all__ = [
    "RenderContext",
    "Rendered",
    "kind_of",
    "render",
    "schema_problems",
    "show_value",
    "truncate",
]


class Rendered(NamedTuple):
    """One message: where to locate it, which FIELD to name, the text, at the key or value."""

    path: DocPath
    field: DocPath
    message: str
    at_key: bool = False
    unknown_key: bool = False


@dataclass(frozen=True)
class RenderContext:
    """What a document format adds to the generic messages (all optional)."""

    written: Mapping[DocPath, str] = field(default_factory=dict)
    """Text as written in the file for values that were expanded (shown instead of the value)."""
    pattern_hints: Mapping[str, str] = field(default_factory=dict)
    """Field name -> what its pattern means (replaces "does not match the pattern ...")."""
    key_hints: Mapping[str, str] = field(default_factory=dict)
    """``propertyNames`` rules: parent field name (``matrix``) or ``parent.*`` -> the rule."""
    required_hints: Mapping[str, str] = field(default_factory=dict)
    """Dotted field -> why it is required (``name`` -> ``every job needs a name``)."""
    unexplained: tuple[Any, ...] = ()
    """``anyOf`` branches never used to explain a failure (e.g. the ``${...}`` string form)."""
    rule: Callable[[ValidationError], str] = lambda error: ""
    """Suffix naming the rule a failure broke, e.g. `` for S2V-01`` (starting with a space)."""
    owner: str | None = None
    """What top-level keys belong to, for "not a field of OWNER (unknown key)"."""


_TYPE_NAMES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "array": "a list",
    "object": "a mapping",
    "null": "empty",
}


def kind_of(value: Any) -> str:
    """What a value is, in words (``a list``, ``empty (null)``, ``the boolean true``)."""
    if value is None:
        return "empty (null)"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    for types, words in _KINDS:
        if isinstance(value, types):
            return words
    return type(value).__name__


_KINDS: tuple[tuple[type | tuple[type, ...], str], ...] = (
    (str, "a string"),
    (int, "an integer"),
    (float, "a number"),
    (list, "a list"),
    (dict, "a mapping"),
)


def truncate(text: str, limit: int = 60) -> str:
    """``text`` cut to ``limit`` characters, saying how long it was."""
    return text if len(text) <= limit else f"{text[: limit - 1]}… ({len(text)} chars)"


def show_value(value: Any) -> str:
    """A short, safe rendering of a value (never a whole document or data URL)."""
    if isinstance(value, str):
        if value.startswith("data:") and len(value) > 40:
            return repr(value[: value.find(",") + 1] + "…")
        return repr(truncate(value))
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return repr(value)
    if value is None:
        return "null"
    return kind_of(value)


def _either(words: list[str]) -> str:
    if len(words) <= 2:
        return " or ".join(words)
    return f"{', '.join(words[:-1])} or {words[-1]}"


def _choices(values: Iterable[Any]) -> str:
    return ", ".join(str(v) if not isinstance(v, bool) else str(v).lower() for v in values)


def _plural(count: int) -> str:
    return f"{count} item{'s' if count != 1 else ''}"


@dataclass(frozen=True)
class _Failure:
    """One error as the keyword messages see it."""

    error: ValidationError
    path: DocPath
    shown: str
    rule: str
    value: Any
    instance: Any
    schema: dict[str, Any]

    @property
    def last(self) -> str:
        return str(self.path[-1]) if self.path else ""


def _type(f: _Failure) -> str:
    expected = f.value if isinstance(f.value, list) else [f.value]
    want = _either([_TYPE_NAMES.get(str(t), str(t)) for t in expected])
    return f"must be {want}, not {kind_of(f.instance)}"


def _enum(f: _Failure) -> str:
    if f.last == "model":
        if not isinstance(f.instance, str):
            return f"{f.shown} is not a known model ({_choices(f.value)})"
        close = get_close_matches(f.instance, [str(v) for v in f.value], n=1, cutoff=0.6)
        guess = f"; did you mean {close[0]!r}?" if close else ""
        return (
            f"{f.shown} is not a known model{guess} (known: {_choices(f.value)}; declare a newer "
            "one in mmgen.yaml)"
        )
    if f.rule:
        return f"{f.shown} is not allowed{f.rule} (one of: {_choices(f.value)})"
    return f"{f.shown} is not one of: {_choices(f.value)}"


def _const(f: _Failure) -> str:
    if f.rule:
        return f"{f.shown} is not allowed{f.rule} (only {show_value(f.value)})"
    return f"must be {show_value(f.value)}, not {f.shown}"


def _min_items(f: _Failure) -> str:
    if f.schema.get("maxItems") == f.value:
        return f"must hold exactly {_plural(f.value)}{f.rule}"
    if f.value == 1:
        return "must not be empty"
    return f"needs at least {f.value} items{f.rule}"


def _max_items(f: _Failure) -> str:
    if f.schema.get("minItems") == f.value:
        return f"must hold exactly {_plural(f.value)}{f.rule} (has {len(f.instance)})"
    return f"holds {len(f.instance)} items; at most {f.value} allowed{f.rule}"


def _number_rule(words: str) -> Callable[[_Failure], str]:
    return lambda f: f"{f.shown} must be {words} {f.value}{f.rule}"


_MESSAGES: dict[str, Callable[[_Failure], str]] = {
    "type": _type,
    "enum": _enum,
    "const": _const,
    "maxLength": lambda f: (
        f"is {len(f.instance)} characters long; at most {f.value} allowed" + f.rule
    ),
    "minLength": lambda f: (
        "must not be empty"
        if f.value == 1
        else f"must be at least {f.value} characters long{f.rule}"
    ),
    "minItems": _min_items,
    "maxItems": _max_items,
    "minProperties": lambda f: "must not be empty",
    "minimum": _number_rule("at least"),
    "maximum": _number_rule("at most"),
    "exclusiveMinimum": _number_rule("more than"),
    "exclusiveMaximum": _number_rule("less than"),
    "uniqueItems": lambda f: "must not hold the same item twice",
}


def render(error: ValidationError, context: RenderContext) -> list[Rendered]:
    """The messages of one schema error (a ``required`` error names each missing key)."""
    path: DocPath = tuple(error.absolute_path)
    if isinstance(error, UnknownKeyError):
        return [_unknown(path, error.suggestion, context)]
    keyword = str(error.validator)
    if keyword == "required":
        return _required(error, path, context)
    if keyword in ("anyOf", "oneOf"):
        return _any_of(error, context)
    if keyword in ("additionalProperties", "unevaluatedProperties") and isinstance(
        error.instance, dict
    ):
        return _unexpected_keys(error, path, context)
    if "propertyNames" in error.absolute_schema_path:
        return [_property_name(error, path, context)]
    written = context.written.get(path)
    failure = _Failure(
        error=error,
        path=path,
        shown=repr(truncate(written)) if written is not None else show_value(error.instance),
        rule=context.rule(error),
        value=error.validator_value,
        instance=error.instance,
        schema=error.schema if isinstance(error.schema, dict) else {},
    )
    if keyword == "pattern":
        default = f"does not match the pattern {failure.value}"
        hint = context.pattern_hints.get(failure.last, default)
        return [Rendered(path, path, f"{failure.shown}: {hint}")]
    describe = _MESSAGES.get(keyword)
    message = describe(failure) if describe else f"is not valid ({keyword}{failure.rule})"
    return [Rendered(path, path, message)]


def _unknown(path: DocPath, suggestion: str | None, context: RenderContext) -> Rendered:
    if context.owner and len(path) == 1:
        message = f"not a field of {context.owner} (unknown key)"
    else:
        message = "unknown key"
    if suggestion:
        message += f"; did you mean {suggestion!r}?"
    return Rendered(path, path, message, at_key=True, unknown_key=True)


def _unexpected_keys(
    error: ValidationError, path: DocPath, context: RenderContext
) -> list[Rendered]:
    """A standard (not strict) validator's one error for several keys: one message per key."""
    instance: Any = error.instance
    known = known_keys(instance, error.schema)
    declared = list(error.schema.get("properties", {})) if isinstance(error.schema, dict) else []
    out = []
    for key in instance:
        if key not in known:
            close = get_close_matches(key, [d for d in declared if d not in instance], n=1)
            out.append(_unknown((*path, key), close[0] if close else None, context))
    return out


def _required(error: ValidationError, path: DocPath, context: RenderContext) -> list[Rendered]:
    instance = error.instance if isinstance(error.instance, dict) else {}
    rule = context.rule(error)
    out = []
    names: Any = error.validator_value
    for key in names:
        if key in instance:
            continue
        reason = context.required_hints.get(dotted((*path, key)))
        reason = f"required: {reason}" if reason else f"required{rule}"
        out.append(Rendered(path, (*path, key), f"missing ({reason})"))
    return out


def _property_name(error: ValidationError, path: DocPath, context: RenderContext) -> Rendered:
    key = str(error.instance)
    parent = str(path[-1]) if path else ""
    grand = str(path[-2]) if len(path) >= 2 else ""
    hint = context.key_hints.get(parent) or context.key_hints.get(f"{grand}.*")
    if hint is None:
        rule = f"must match {error.validator_value}" if error.validator == "pattern" else "invalid"
        hint = f"key here ({rule})"
    return Rendered((*path, key), (*path, key), f"{key!r} is not a valid {hint}", True)


def _any_of(error: ValidationError, context: RenderContext) -> list[Rendered]:
    """Explain the branch the value came closest to, or list the types it could have been."""
    branches: dict[int, list[ValidationError]] = {}
    for sub in error.context or []:
        index = sub.relative_schema_path[0]
        if isinstance(index, int):
            branches.setdefault(index, []).append(sub)
    here = tuple(error.absolute_path)
    candidates = [
        errs for errs in branches.values() if not any(e.schema in context.unexplained for e in errs)
    ]
    missing = _missing_in_every_branch(candidates, here)
    if missing:
        message = f"missing (required{context.rule(error)}: {_either(missing)})"
        return [Rendered(here, (*here, missing[0]), message)]
    # prefer a branch whose failure is not a type mismatch of this very value
    for errs in candidates:
        if not any(e.validator == "type" and tuple(e.absolute_path) == here for e in errs):
            return [out for sub in errs for out in render(sub, context)]
    wanted: list[str] = []
    for errs in candidates:
        for e in errs:
            if e.validator == "type":
                raw: Any = e.validator_value
                for t in raw if isinstance(raw, list) else [raw]:
                    name = _TYPE_NAMES.get(str(t), str(t))
                    if name not in wanted:
                        wanted.append(name)
    want = _either(wanted) or "valid"
    return [Rendered(here, here, f"must be {want}, not {kind_of(error.instance)}")]


def _missing_in_every_branch(branches: list[list[ValidationError]], here: DocPath) -> list[str]:
    """The keys of "one of these keys is required" (``anyOf`` of ``required``), else []."""
    errors = [e for errs in branches for e in errs]
    if not errors or any(
        e.validator != "required" or tuple(e.absolute_path) != here for e in errors
    ):
        return []
    names: list[str] = []
    for e in errors:
        value: Any = e.validator_value
        instance = e.instance if isinstance(e.instance, dict) else {}
        names += [k for k in value if k not in instance and k not in names]
    return names


def schema_problems(
    file: str,
    data: Any,
    positions: Positions,
    validator: Validator,
    *,
    context: RenderContext | None = None,
) -> list[Problem]:
    """Every schema error of ``data`` as a :class:`Problem` located in ``file``, sorted.

    Use :func:`mmgen.schemas.strict_validator` for one problem per unknown key with a "did you
    mean"; a standard validator works too (its unknown-key errors are split per key here).
    """
    context = context or RenderContext()
    out: list[Problem] = []
    for error in validator.iter_errors(data):
        for item in render(error, context):
            line, col = positions.at(item.path, key=item.at_key)
            problem = Problem(file, line, col, dotted(item.field), item.message)
            if problem not in out:
                out.append(problem)
    return sorted(out)
