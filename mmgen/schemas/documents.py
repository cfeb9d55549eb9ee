"""Read a YAML or JSON document into plain data, keeping the line and column of every value.

:func:`load_document` is the one door every checked file goes through (job files, the mock's
config): it never raises for bad input, it refuses what could hurt (huge files, binary files,
alias bombs, deep nesting, recursive aliases) and it reports each problem as a located
:class:`~mmgen.errors.Problem`. Positions are 1-based ``(line, column)`` pairs, looked up by
the path of the value in the data (``("jobs", 0, "name")``).

YAML is read with the safe loader and only plain values: strings, integers, floats, booleans,
null, lists and mappings with string keys (a date stays text). Duplicate keys, merge keys
(``<<``) and other tags are problems. A ``.json`` file is parsed by the standard JSON parser (its
data and its errors) and located through the YAML composer (JSON is YAML's flow style).
"""

from __future__ import annotations

import bisect
import json
import math
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mmgen.errors import Problem

__all__ = [
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "MAX_YAML_NODES",
    "DocPath",
    "DocumentKind",
    "Pos",
    "Positions",
    "dotted",
    "load_document",
]

MAX_FILE_BYTES = 5 * 1024 * 1024
"""Files larger than this are refused (inline data URLs count)."""
MAX_YAML_NODES = 100_000
"""Values in one document after alias expansion: beyond this it is an alias bomb, not data."""
MAX_DEPTH = 64
"""Nesting depth of a document."""

DocPath = tuple[str | int, ...]
"""The path of a value inside a document: mapping keys and list indexes."""
Pos = tuple[int, int]
"""A 1-based (line, column)."""


def dotted(path: tuple[str | int, ...] | list[str | int]) -> str:
    """``("jobs", 0, "name")`` -> ``"jobs.0.name"`` (the FIELD of a problem)."""
    return ".".join(str(p) for p in path)


@dataclass
class Positions:
    """Where each value (and each mapping key) of a document starts."""

    values: dict[DocPath, Pos] = field(default_factory=dict)
    keys: dict[DocPath, Pos] = field(default_factory=dict)
    strings: dict[DocPath, tuple[int, int, str]] = field(default_factory=dict)
    """String values: ``(start, end, style)`` of their source text (style ``""`` plain,
    ``'`` or ``"`` quoted, ``|`` or ``>`` block), for :meth:`char_at`."""
    text: str = ""

    def at(self, path: DocPath, *, key: bool = False) -> Pos:
        """Position of the value (or of its key) at ``path``; else of its nearest ancestor."""
        if key and path in self.keys:
            return self.keys[path]
        while path not in self.values and path:
            path = path[:-1]
        return self.values.get(path, (1, 1))

    def char_at(self, path: DocPath, value: str, offset: int) -> Pos | None:
        """Where character ``offset`` of the string ``value`` at ``path`` is written, following
        the source through quotes, escapes and line folding; None when it cannot be followed
        (``value`` is not the text written there, e.g. after ``${...}`` expansion)."""
        span = self.strings.get(path)
        if span is None or not 0 <= offset < len(value):
            return None
        index = _follow(self.text, *span, value, offset)
        return None if index is None else _Lines(self.text).pos(index)


_ESCAPE_LENGTHS = {"x": 4, "u": 6, "U": 10}


def _follow(text: str, start: int, end: int, style: str, value: str, offset: int) -> int | None:
    """The index in ``text`` where character ``offset`` of ``value`` is written, the scalar's
    source being ``text[start:end]``."""
    i = start + 1 if style in ("'", '"') else start
    if style in ("|", ">"):
        i = text.find("\n", start, end) + 1 or end
    for n, char in enumerate(value):
        while True:
            if i >= end:
                return None
            here = text[i]
            if style == '"' and here == "\\":
                nxt = text[i + 1 : i + 2]
                if nxt in ("\n", "\r"):  # an escaped line break: no character
                    i += 2
                    continue
                step = _ESCAPE_LENGTHS.get(nxt, 2)
            elif style == "'" and here == "'" and char == "'":
                step = 2
            elif here == char or (here == "\n" and char == " "):
                step = 1
            elif here in " \t\r\n":  # indentation and folded line breaks
                i += 1
                continue
            else:
                return None
            break
        if n == offset:
            return i
        i += step
    return None


@dataclass(frozen=True)
class DocumentKind:
    """How messages name the document: ``noun`` ("job file"), what its root should be."""

    noun: str = "document"
    expected: str = "a mapping (key: value, ...)"
    shape: str = "key: value, ..."


class _NodeProblem(Exception):
    """A problem that makes the whole document unusable (alias bomb, recursion, depth)."""

    def __init__(self, pos: Pos, message: str, path: DocPath = ()) -> None:
        super().__init__(message)
        self.pos = pos
        self.message = message
        self.path = path


class _Lines:
    """1-based positions counted in "\\n"-separated lines, as editors and ``FILE:LINE`` readers
    count them (YAML also breaks lines at a lone \\r, U+0085, U+2028 and U+2029)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.starts = [0, *(m.end() for m in re.finditer("\n", text))]

    def pos(self, index: int) -> Pos:
        index = min(max(index, 0), len(self.text))
        line = bisect.bisect_right(self.starts, index)
        return line, index - self.starts[line - 1] + 1

    def at(self, mark: yaml.Mark) -> Pos:
        return self.pos(mark.index)

    def node(self, node: yaml.Node) -> Pos:
        return self.pos(node.start_mark.index)


_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_constructor = yaml.constructor.SafeConstructor()
_TAG = "tag:yaml.org,2002:"
_SCALAR_TAGS = {
    _TAG + "int": _constructor.construct_yaml_int,
    _TAG + "float": _constructor.construct_yaml_float,
    _TAG + "bool": _constructor.construct_yaml_bool,
    _TAG + "null": _constructor.construct_yaml_null,
}


class _Converter:
    """Turn a composed YAML node tree into plain data, recording positions, with limits."""

    def __init__(
        self, file: str, lines: _Lines, positions: Positions, problems: list[Problem]
    ) -> None:
        self.file = file
        self.lines = lines
        self.positions = positions
        self.problems = problems
        self.count = 0
        self.active: set[int] = set()

    def convert(self, node: yaml.Node, path: DocPath) -> Any:
        self.count += 1
        if self.count > MAX_YAML_NODES:
            message = f"document expands to more than {MAX_YAML_NODES} values (alias bomb?)"
            raise _NodeProblem(self.lines.node(node), message)
        where = self.positions.values[path] = self.lines.node(node)
        if isinstance(node, yaml.ScalarNode):
            if node.tag == _TAG + "str":
                span = (node.start_mark.index, node.end_mark.index, node.style or "")
                self.positions.strings[path] = span
            return self.scalar(node, path)
        if id(node) in self.active:
            raise _NodeProblem(where, "recursive alias: a value contains itself", path)
        if len(path) > MAX_DEPTH:
            raise _NodeProblem(where, f"nested more than {MAX_DEPTH} levels deep", path)
        expected = _TAG + ("seq" if isinstance(node, yaml.SequenceNode) else "map")
        if node.tag != expected:
            raise _NodeProblem(self.lines.node(node), f"YAML tag {node.tag} is not supported", path)
        self.active.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return [self.convert(child, (*path, i)) for i, child in enumerate(node.value)]
            return self.mapping(node, path)
        finally:
            self.active.discard(id(node))

    def mapping(self, node: yaml.Node, path: DocPath) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _TAG + "merge":
                message = "YAML merge keys (<<) are not supported; use defaults:"
                self.problem(key_node, path, message)
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self.problem(key_node, path, "a key must be a plain string, not a list or mapping")
                continue
            key = str(key_node.value)
            child = (*path, key)
            if key in result:
                first = self.positions.keys[child]
                self.problem(key_node, child, f"duplicate key {key!r} (first at line {first[0]})")
                continue
            self.positions.keys[child] = self.lines.node(key_node)
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
            return node.value  # a date is text here
        self.problem(node, path, f"YAML tag {tag} is not supported (plain values only)")
        return node.value

    def problem(self, node: yaml.Node, path: DocPath, message: str) -> None:
        self.problems.append(Problem(self.file, *self.lines.node(node), dotted(path), message))


def load_document(
    path: str | Path, *, kind: DocumentKind = DocumentKind()
) -> tuple[Any | None, Positions, list[Problem]]:
    """Read one YAML (or ``.json``) file: ``(data, positions, problems)``.

    ``data`` is None when the file cannot be used at all (unreadable, not text, a syntax error,
    an alias bomb...); then ``problems`` says why. Otherwise ``data`` is the document's root
    mapping or value, and ``problems`` may still hold problems of some of its values (a
    duplicate key, a merge key, an unsupported tag): the caller reports them and must not
    trust the document, but can check the rest of it. Problems name the file as given.
    """
    file = str(path)
    positions = Positions()
    problems: list[Problem] = []
    text = _read_text(file, kind, problems)
    if text is None:
        return None, positions, problems
    if file.lower().endswith(".json"):
        data = _parse_json(file, text, kind, positions, problems)
    else:
        data = _parse_yaml(file, text, kind, positions, problems)
    return data, positions, problems


def _read_text(file: str, kind: DocumentKind, problems: list[Problem]) -> str | None:
    def fail(message: str, line: int = 1, col: int = 1) -> str | None:
        problems.append(Problem(file, line, col, "", message))
        return None

    try:
        file.encode("utf-8")
    except UnicodeEncodeError:  # its records could not be written: refused before anything
        shown = os.fsencode(file).decode("utf-8", "backslashreplace")
        problems.append(Problem(shown, 1, 1, "", "the file name is not valid UTF-8: rename it"))
        return None
    try:
        # Only a regular file, and at most MAX_FILE_BYTES of it: a device (/dev/zero) is never
        # read without bound, a FIFO never waited on (O_NONBLOCK: its open does not block).
        fd = os.open(file, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(handle.fileno())
            if stat.S_ISDIR(info.st_mode):
                return fail("is a folder, not a file")
            if not stat.S_ISREG(info.st_mode):
                return fail("not a regular file (a device, FIFO or socket)")
            size = info.st_size
            if size > MAX_FILE_BYTES:
                limit = f"{kind.noun}s are limited to {MAX_FILE_BYTES} bytes"
                return fail(f"file is {size} bytes; {limit}")
            raw = handle.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        return fail("no such file")
    except IsADirectoryError:
        return fail("is a folder, not a file")
    except OSError as err:
        return fail(f"cannot read: {err.strerror or err}")
    if len(raw) > MAX_FILE_BYTES:  # grew since stat
        return fail(f"file is larger than {MAX_FILE_BYTES} bytes")
    if b"\x00" in raw:
        line = raw[: raw.index(b"\x00")].count(b"\n") + 1
        syntax = "JSON" if file.lower().endswith(".json") else "YAML"
        return fail(f"binary file (NUL byte): not a {syntax} {kind.noun}", line)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        before = raw[: err.start]
        line = before.count(b"\n") + 1
        col = err.start - (before.rfind(b"\n") + 1) + 1
        return fail(f"not UTF-8 text (byte 0x{raw[err.start]:02x})", line, col)


def _parse_yaml(
    file: str, text: str, kind: DocumentKind, positions: Positions, problems: list[Problem]
) -> Any:
    try:
        nodes = list(yaml.compose_all(text, Loader=_Loader))
    except yaml.MarkedYAMLError as err:
        problems.append(_syntax_problem(file, text, err))
        return None
    except yaml.YAMLError as err:
        problems.append(Problem(file, 1, 1, "", f"YAML error: {err}"))
        return None
    except RecursionError:
        problems.append(Problem(file, 1, 1, "", "nested too deeply"))
        return None
    if not nodes:
        problems.append(Problem(file, 1, 1, "", f"empty file: expected {kind.expected}"))
        return None
    if len(nodes) > 1:
        message = f"more than one YAML document; put one {kind.noun} per document"
        problems.append(Problem(file, *_Lines(text).node(nodes[1]), "", message))
        return None
    return _convert_root(file, _Lines(text), nodes[0], kind, positions, problems)


def _convert_root(
    file: str,
    lines: _Lines,
    root: yaml.Node,
    kind: DocumentKind,
    positions: Positions,
    problems: list[Problem],
) -> Any:
    if not isinstance(root, yaml.MappingNode):
        if isinstance(root, yaml.ScalarNode) and root.tag == _TAG + "null":
            message = f"empty document: expected {kind.expected}"
        else:
            message = f"a {kind.noun} must be a mapping ({kind.shape})"
        problems.append(Problem(file, *lines.node(root), "", message))
        return None
    positions.text = lines.text
    try:
        return _Converter(file, lines, positions, problems).convert(root, ())
    except _NodeProblem as err:
        problems.append(Problem(file, *err.pos, dotted(err.path), err.message))
        return None


def _syntax_problem(file: str, text: str, err: yaml.MarkedYAMLError) -> Problem:
    """One located, readable problem for a YAML syntax error, always inside the file."""
    lines = _Lines(text)
    mark = err.problem_mark or err.context_mark
    line, col = lines.at(mark) if mark else (1, 1)
    message = err.problem or err.context or "invalid YAML"
    if err.problem and err.context and err.context_mark:
        where = "line {}, column {}".format(*lines.at(err.context_mark))
        message = f"{message} ({err.context} at {where})"
    context = err.context or ""
    if mark and text[mark.index : mark.index + 1] == "\t":
        message = "tab character: indent YAML with spaces"
    elif "quoted scalar" in context and err.context_mark and mark and mark.index >= len(text):
        line, col = lines.at(err.context_mark)
        message = "this quoted string is never closed: add the closing quote"
    elif "flow" in context and (ref := _flow_reference(text, err.context_mark, mark)):
        line, col = lines.pos(ref[0])
        example = f'["{ref[1]}"]' if "sequence" in context else f'{{key: "{ref[1]}"}}'
        message = f"{ref[1]} inside [...] or {{...}} must be quoted: write {example}"
    return Problem(file, *_inside(text, line, col), "", f"YAML syntax error: {message}")


_FLOW_REF = re.compile(r"\$\{[^}\s]*\}?")


def _flow_reference(
    text: str, start: yaml.Mark | None, end: yaml.Mark | None
) -> tuple[int, str] | None:
    """The first ``${...}`` from the opening of a flow collection to the error's line end."""
    first = start.index if start else 0
    last = text.find("\n", end.index) if end else -1
    match = _FLOW_REF.search(text, first, last if last >= 0 else len(text))
    if match is None:
        return None
    return match.start(), match.group(0)


def _inside(text: str, line: int, col: int) -> Pos:
    """Clamp a position to the file's last real line (a final newline adds no line)."""
    lines = text.split("\n")
    count = len(lines) - 1 if len(lines) > 1 and lines[-1] == "" else len(lines)
    if line <= count:
        return line, col
    return count, len(lines[count - 1]) + 1


def _parse_json(
    file: str, text: str, kind: DocumentKind, positions: Positions, problems: list[Problem]
) -> Any:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        problems.append(Problem(file, *_inside(text, err.lineno, err.colno), "", err.msg))
        return None
    except RecursionError:
        problems.append(Problem(file, 1, 1, "", "nested too deeply"))
        return None
    if not isinstance(data, dict):
        message = f"a {kind.noun} must be a JSON object ({kind.shape})"
        problems.append(Problem(file, 1, 1, "", message))
        return None
    # JSON outside strings is YAML flow style (a raw tab can only be whitespace in valid JSON):
    # the YAML composer gives the positions, the depth limit and the duplicate keys that
    # json.loads lets by. Should it choke on some valid JSON, problems are located at 1:1.
    try:
        root = yaml.compose(text.replace("\t", " "), Loader=_Loader)
    except (yaml.YAMLError, RecursionError):
        return data
    if root is None or _convert_root(file, _Lines(text), root, kind, positions, problems) is None:
        return None
    return data
