"""The recording on disk: ``FILE`` (JSON Lines) and ``FILE.d/videos/`` (the videos).

``FILE`` holds one JSON object per line, appended and fsync'd one at a time, so a recorder that
is killed keeps everything written before (at worst the last line is cut short; the loader
skips it with a warning). The first line is the header; every later line has a ``kind``, a
``seq`` (1, 2, ...) and ``at`` (seconds since the recording started):

- ``{"kind": "recording", "format": "mmgen-recording", "version": 1, "upstream", "started_at"}``
- ``exchange``: one API request and its answer: ``request`` (``method``, ``path``, ``query``
  as ``[[name, value], ...]``, ``headers``, ``body`` (JSON with long strings clipped, or
  ``text``), ``key``: what replay matches on), ``response`` (``status``, ``headers``, ``body``
  or ``text``), ``elapsed_ms``; a create with a ``callback_url`` adds ``callback``
  (``{"token"}``), a retrieve with a download URL adds ``download`` (``{"id", "file_id",
  "upstream"}``: the origin and path only; the signed query string is not kept).
- ``callback``: one POST the upstream made to a ``callback_url``, forwarded to the receiver:
  ``token`` (ties it to its create), ``challenge`` (bool), ``task_id``, ``payload``,
  ``receiver`` (``status`` and ``body`` of the receiver's answer, or ``error``), ``elapsed_ms``.
- ``download``: one download through the recorder: ``id``, ``file_id``, ``status``,
  ``headers``, ``video`` (``videos/<sha256>.mp4`` for a complete 200 answer, else null),
  ``sha256``, ``bytes``, ``complete``, ``text`` (an error body), and
  ``client_sent_authorization`` (a client that sends its key to the CDN leaks it).

Every line is redacted (:mod:`mock_server.recording.redaction`) before it is written.
Videos are content-addressed: the same video downloaded twice is stored once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mmgen.errors import UsageError
from mock_server.recording.redaction import Redactor
from mock_server.store import clip

#: Strings longer than this are shortened in a recording (length and sha256 kept).
RECORDED_CLIP_AT = 512

FORMAT = "mmgen-recording"
VERSION = 1

#: Query parameters that say nothing about what is asked (older clients send GroupId).
IGNORED_PARAMS = frozenset({"groupid"})
#: Body fields left out of the match: the receiver's URL changes from run to run.
IGNORED_FIELDS = frozenset({"callback_url"})

_VIDEO_NAME = re.compile(r"^videos/[0-9a-f]{64}\.mp4$")


def folder_of(path: Path) -> Path:
    """The folder beside a recording that holds its videos: ``FILE.d``."""
    return path.with_name(path.name + ".d")


def normalized_query(items: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Query parameters as matched: GroupId dropped, values unquoted and stripped, sorted."""
    return sorted(
        (name, value.strip().strip('"').strip())
        for name, value in items
        if name.lower() not in IGNORED_PARAMS
    )


def parse_json(raw: bytes) -> Any:
    """The JSON value of ``raw``, or None when it is empty or not JSON."""
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None


def body_digest(raw: bytes) -> str:
    """sha256 of a body as matched: JSON canonicalised (keys sorted, callback_url left out)."""
    if not raw.strip():
        return ""
    value = parse_json(raw)
    if value is None:
        return hashlib.sha256(raw).hexdigest()
    if isinstance(value, dict):
        value = {k: v for k, v in value.items() if k not in IGNORED_FIELDS}
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


def request_key(method: str, path: str, query: list[tuple[str, str]], raw_body: bytes) -> str:
    """What replay matches a request on: method, path, normalised query and body."""
    params = "&".join(f"{name}={value}" for name, value in normalized_query(query))
    digest = body_digest(raw_body)
    return f"{method.upper()} {path.rstrip('/') or '/'}?{params}#{digest[:32]}"


def body_fields(raw: bytes, *, clip_strings: bool = False) -> dict[str, Any]:
    """``{"body": JSON}`` or ``{"text": str}`` (or nothing) for a request or response body."""
    if not raw:
        return {}
    value = parse_json(raw)
    if value is not None:
        return {"body": clip(value, RECORDED_CLIP_AT) if clip_strings else value}
    return {"text": raw.decode("utf-8", "replace")}


class VideoPart:
    """A video being written beside the recording: a temp file, committed under its sha256."""

    def __init__(self, folder: Path) -> None:
        self._videos = folder / "videos"
        self._file = tempfile.NamedTemporaryFile(  # noqa: SIM115 (closed in commit/discard)
            dir=self._videos, prefix=".part-", suffix=".mp4", delete=False
        )
        self._path = Path(self._file.name)
        self._hash = hashlib.sha256()
        self.bytes = 0

    def write(self, chunk: bytes) -> None:
        self._file.write(chunk)
        self._hash.update(chunk)
        self.bytes += len(chunk)

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def commit(self) -> str:
        """fsync, rename to ``videos/<sha256>.mp4``; returns that name (relative to FILE.d)."""
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        name = f"videos/{self.sha256}.mp4"
        dest = self._videos.parent / name
        if dest.exists():  # the same video again: keep the first copy
            self._path.unlink(missing_ok=True)
        else:
            os.replace(self._path, dest)
            _fsync_dir(self._videos)
        return name

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()
        self._path.unlink(missing_ok=True)


class RecordingWriter:
    """Appends redacted events to a new recording, one fsync'd line at a time (thread-safe)."""

    def __init__(self, path: Path, redactor: Redactor, *, upstream: str) -> None:
        if path.exists() and (not path.is_file() or path.stat().st_size > 0):
            raise UsageError(
                f"the recording {path} already exists",
                hint="choose another --record file; a recording is never overwritten",
            )
        self.path = path
        self.folder = folder_of(path)
        self.redactor = redactor
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            (self.folder / "videos").mkdir(parents=True, exist_ok=True)
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        except OSError as err:
            raise UsageError(f"cannot write the recording {path}: {err.strerror or err}") from None
        self._lock = threading.Lock()
        self._seq = 0
        self._started = time.monotonic()
        _fsync_dir(path.parent)
        self._write(
            {
                "kind": "recording",
                "format": FORMAT,
                "version": VERSION,
                "upstream": upstream,
                "started_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            }
        )

    def now(self) -> float:
        """Seconds since the recording started (the ``at`` of events)."""
        return round(time.monotonic() - self._started, 3)

    def append(self, kind: str, event: dict[str, Any]) -> None:
        """Write one event line (redacted, durable before this returns)."""
        with self._lock:
            self._seq += 1
            self._write({"kind": kind, "seq": self._seq, **event})

    def _write(self, event: dict[str, Any]) -> None:
        line = json.dumps(self.redactor.scrub(event), ensure_ascii=False, separators=(",", ":"))
        data = (self.redactor.text(line) + "\n").encode("utf-8", "surrogatepass")
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        os.fsync(self._fd)

    def video_part(self) -> VideoPart:
        return VideoPart(self.folder)

    def close(self) -> None:
        with self._lock, contextlib.suppress(OSError):
            os.close(self._fd)


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform can fsync a directory
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@dataclass
class Recording:
    """A loaded recording, indexed for replay."""

    path: Path
    header: dict[str, Any]
    #: request key -> the exchanges recorded for it, in order
    exchanges: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    #: callback token -> the callbacks recorded for it, in order
    callbacks: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    #: download id -> the downloads recorded for it, in order
    downloads: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    #: file id -> the complete downloads of that file
    videos_by_file: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    #: "METHOD /path" -> how many exchanges were recorded (for error messages)
    endpoints: Counter[str] = field(default_factory=Counter)
    #: what the loader skipped (a cut-short last line...)
    warnings: list[str] = field(default_factory=list)

    @property
    def folder(self) -> Path:
        return folder_of(self.path)

    def video_path(self, download: dict[str, Any]) -> Path:
        return self.folder / str(download["video"])


def load_recording(path: Path) -> Recording:
    """Read and index a recording; UsageError naming FILE:LINE for anything unusable."""
    try:
        text = path.read_bytes().decode("utf-8", "surrogatepass")
    except OSError as err:
        raise UsageError(f"cannot read the recording {path}: {err.strerror or err}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not a recording (not UTF-8 text)") from None
    lines = text.split("\n")
    events: list[dict[str, Any]] = []
    warnings: list[str] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except ValueError:
            if not events:
                break  # no header: reported below
            if number == len(lines):  # the last line, with no newline: a recorder was killed
                warnings.append(f"{path}:{number}: skipped a cut-short last line")
                continue
            raise UsageError(f"{path}:{number}: not a JSON line of a recording") from None
        if not isinstance(event, dict) or "kind" not in event:
            if not events:
                break
            raise UsageError(f"{path}:{number}: not an event of a recording (no kind)")
        events.append(event)
    if not events or events[0].get("format") != FORMAT:
        raise UsageError(f"{path}: not an mmgen recording (no '{FORMAT}' header line)")
    if events[0].get("version") != VERSION:
        raise UsageError(
            f"{path}: recording format version {events[0].get('version')!r} is not supported "
            f"(this mmgen reads version {VERSION})"
        )
    recording = Recording(path=path, header=events[0], warnings=warnings)
    for event in events[1:]:
        _index(recording, event)
    return recording


def _index(recording: Recording, event: dict[str, Any]) -> None:
    kind = event["kind"]
    where = f"{recording.path}: event {event.get('seq')}"
    if kind == "exchange":
        request = event.get("request") or {}
        if "key" not in request or "response" not in event:
            raise UsageError(f"{where}: an exchange needs request.key and response")
        recording.exchanges[request["key"]].append(event)
        recording.endpoints[f"{request.get('method')} {request.get('path')}"] += 1
    elif kind == "callback":
        recording.callbacks[str(event.get("token"))].append(event)
    elif kind == "download":
        recording.downloads[str(event.get("id"))].append(event)
        if event.get("video") is not None:
            name = str(event["video"])
            if not _VIDEO_NAME.match(name):
                raise UsageError(f"{where}: bad video name {name!r}")
            if not recording.video_path(event).is_file():
                raise UsageError(
                    f"{where}: the video {recording.folder / name} is missing",
                    hint=f"keep {recording.folder.name}/ beside {recording.path.name}",
                )
            recording.videos_by_file[str(event.get("file_id"))].append(event)
    else:
        recording.warnings.append(f"{where}: unknown kind {kind!r} skipped")
