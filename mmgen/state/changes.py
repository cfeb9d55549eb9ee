"""What changed in a job's request since its last record.

:func:`request_snapshot` (from :mod:`mmgen.state.records`, which writes it) is the form a request
body is recorded in (``Record.request``): the body as sent, each data-URL image replaced by
``sha256:<hex of its bytes>``, so records stay small and diffable while a changed image still
shows up. :func:`diff_requests` compares two snapshots field by field (dotted paths, as
``mmgen validate`` names fields); ``plan --format markdown`` shows the result for every
``changed`` job, comparing the last record's ``request`` with ``request_snapshot(job.body)``.
:func:`word_diff` compares two prompts word by word (the plan comment, text plan, gallery).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Any, Final, Literal

from mmgen.state.records import request_snapshot

__all__ = [
    "MISSING",
    "RUN_ADDED_FIELDS",
    "FieldChange",
    "diff_requests",
    "flatten",
    "request_snapshot",
    "word_diff",
]

#: Fields a run adds to the body it sends when the job file does not set them: they are not a
#: change of the job (each run has its own callback path).
RUN_ADDED_FIELDS: Final = frozenset({"callback_url"})


class _Missing:
    """The field is absent on that side of a change."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()


@dataclass(frozen=True)
class FieldChange:
    """One field that differs: ``old`` or ``new`` is :data:`MISSING` when the field was added
    or removed. ``field`` is a dotted path such as ``subject_reference.0.image.0``."""

    field: str
    old: Any
    new: Any

    @property
    def kind(self) -> str:
        if self.old is MISSING:
            return "added"
        if self.new is MISSING:
            return "removed"
        return "changed"


def flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Leaves of a JSON value as ``(dotted path, value)``; an empty list or object is a leaf."""
    if isinstance(value, Mapping) and value:
        for key in value:
            yield from flatten(value[key], f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, list) and value:
        for index, item in enumerate(value):
            yield from flatten(item, f"{prefix}.{index}" if prefix else str(index))
    else:
        yield prefix, value


def diff_requests(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[FieldChange]:
    """Every leaf field that differs between two request snapshots, in the order of ``new``
    (then the removed ones). Fields a run adds itself (:data:`RUN_ADDED_FIELDS`) are left out
    unless the new request sets them."""
    old = {k: v for k, v in old.items() if k not in RUN_ADDED_FIELDS or k in new}
    before = dict(flatten(old))
    after = dict(flatten(new))
    changes = [
        FieldChange(path, before.get(path, MISSING), value)
        for path, value in after.items()
        if path not in before or before[path] != value or type(before[path]) is not type(value)
    ]
    changes += [
        FieldChange(path, value, MISSING) for path, value in before.items() if path not in after
    ]
    return changes


WordOp = Literal["same", "removed", "added"]


def word_diff(old: str, new: str) -> list[tuple[WordOp, str]]:
    """``old`` -> ``new`` word by word: runs of ``(op, text)`` whose texts, without the
    ``removed`` ones, make ``new`` (and without the ``added`` ones, ``old``). Whitespace
    belongs to the word before it, so a changed word is one run."""
    before, after = _words(old), _words(new)
    runs: list[tuple[WordOp, str]] = []

    def add(op: WordOp, words: list[str]) -> None:
        text = "".join(words)
        if not text:
            return
        if runs and runs[-1][0] == op:
            runs[-1] = (op, runs[-1][1] + text)
        else:
            runs.append((op, text))

    matcher = SequenceMatcher(a=before, b=after, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            add("same", after[j1:j2])
        else:
            add("removed", before[i1:i2])
            add("added", after[j1:j2])
    return runs


def _words(text: str) -> list[str]:
    return re.findall(r"\s*\S+\s*|\s+", text)
