"""What the MiniMax API answers, parsed: task statuses, file descriptions, ``base_resp``, ids
(strings or int64), ``Retry-After``, and URLs made safe for messages. No I/O."""

from __future__ import annotations

import email.utils
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

#: The statuses after which a task changes no more.
TERMINAL_STATUSES = frozenset({"Success", "Fail"})

_STATUSES = {
    "preparing": "Preparing",
    "queueing": "Queueing",
    "queued": "Queueing",
    "processing": "Processing",
    "success": "Success",
    "succeeded": "Success",
    "fail": "Fail",
    "failed": "Fail",
}


@dataclass(frozen=True)
class TaskStatus:
    """The state of a generation task, as the query endpoint (or a callback) reports it."""

    task_id: str
    #: "Preparing", "Queueing", "Processing", "Success" or "Fail"; unknown values are kept as-is.
    status: str
    file_id: str | None
    width: int | None
    height: int | None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @classmethod
    def from_payload(cls, data: Mapping[str, Any], task_id: str | None = None) -> TaskStatus:
        """Build from a query response or a callback body (status compared case-insensitively).

        Raises ``ValueError`` when there is no usable task id or status.
        """
        raw_id = id_or_none(data.get("task_id")) or task_id
        status = data.get("status")
        if not raw_id or not isinstance(status, str) or not status.strip():
            raise ValueError("no task_id or status")
        return cls(
            task_id=raw_id,
            status=normalize_status(status),
            file_id=id_or_none(data.get("file_id")),
            width=dimension(data.get("video_width")),
            height=dimension(data.get("video_height")),
        )


@dataclass(frozen=True)
class FileInfo:
    """A generated file as the retrieve endpoint describes it."""

    file_id: str
    #: Size announced by MiniMax; may be 0 (unknown).
    bytes: int
    filename: str
    #: A CDN URL valid for about an hour; fetch it without the API key.
    download_url: str

    def __repr__(self) -> str:  # the URL is a bearer credential for an hour: keep it out of logs
        return (
            f"FileInfo(file_id={self.file_id!r}, bytes={self.bytes}, "
            f"filename={self.filename!r}, download_url={redact_url(self.download_url)!r})"
        )


@dataclass(frozen=True)
class Download:
    """A file written completely and atomically to ``path``."""

    path: Path
    sha256: str
    bytes: int


def normalize_status(status: str) -> str:
    """``"success"``/``"SUCCESS"`` -> ``"Success"``, ``"failed"`` -> ``"Fail"``; unknown kept."""
    return _STATUSES.get(status.strip().lower(), status)


def base_resp(data: Mapping[str, Any] | None) -> tuple[int | None, str]:
    """``(status_code, status_msg)`` of a body; code None when absent or unreadable."""
    if data is None:
        return None, ""
    base = data.get("base_resp")
    if not isinstance(base, Mapping):
        return None, ""
    raw = base.get("status_code")
    message = base.get("status_msg")
    message = message if isinstance(message, str) else ""
    if isinstance(raw, bool):
        return None, message
    if isinstance(raw, int):
        return raw, message
    if isinstance(raw, str):
        try:
            return int(raw.strip()), message
        except ValueError:
            return None, message
    return None, message


def id_or_none(value: Any) -> str | None:
    """Task and file ids come as strings or as int64: always give a non-empty str or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value) if value else None
    if isinstance(value, str):
        return value.strip() or None
    return None


def dimension(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and value > 0:
        return value
    if isinstance(value, str) and value.strip().isdigit() and int(value) > 0:
        return int(value)
    return None


def non_negative_int(value: Any) -> int:
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return max(value, 0)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return 0


def content_length(response: httpx.Response) -> int | None:
    raw = response.headers.get("Content-Length")
    if raw is None or not raw.strip().isdigit():
        return None
    return int(raw)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(seconds, 0.0)


def redact_url(url: str) -> str:
    """The URL without its query string (download URLs carry signatures there)."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        return "(invalid URL)"
    if not parsed.host:
        return "(invalid URL)"
    return f"{parsed.scheme}://{parsed.host}{parsed.path}"
