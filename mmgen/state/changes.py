"""What changed in a job's request since its last record.

:func:`request_snapshot` (from :mod:`mmgen.state.records`, which writes it) is the form a request
body is recorded in (``Record.request``): the body as sent, each data-URL image replaced by
``sha256:<hex of its bytes>``, so records stay small and diffable while a changed image still
shows up. :func:`diff_requests` compares two snapshots field by field (dotted paths, as
``mmgen validate`` names fields); ``plan --format markdown`` shows the result for every
``changed`` job, comparing the last record's ``request`` with ``request_snapshot(job.body)``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import unquote_to_bytes

from mmgen.state.records import request_snapshot

__all__ = [
    "MISSING",
    "RUN_ADDED_FIELDS",
    "FieldChange",
    "data_url_bytes",
    "diff_requests",
    "flatten",
    "request_snapshot",
]

#: Fields a run adds to the body it sends when the job file does not set them: they are not a
#: change of the job (each run has its own callback path).
RUN_ADDED_FIELDS: Final = frozenset({"callback_url"})


class _Missing:
    """The field is absent on that side of a change."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()


def data_url_bytes(url: str) -> bytes | None:
    """The bytes a ``data:`` URL carries (base64 or percent-encoded); None for other strings."""
    if url[:5].lower() != "data:":
        return None
    header, sep, payload = url[5:].partition(",")
    if not sep:
        return None
    if header.lower().endswith(";base64"):
        try:
            return base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            return payload.encode("utf-8", "surrogateescape")
    return unquote_to_bytes(payload)


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
