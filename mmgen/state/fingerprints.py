"""What plan trusts instead of re-hashing every video: a local out dir's fingerprints.

``OUT/.mmgen/fingerprints.json`` maps a video's path to ``[size, mtime_ns, sha256]``, taken when
mmgen wrote the file or last hashed it. A video whose size and mtime are unchanged is trusted
to hold the recorded sha256, so a plan of thousands of finished jobs costs one ``stat`` each,
not a read of every byte (``--verify`` hashes them all again). A file altered in place with
its size and mtime kept is only caught by ``--verify``.

The file is a cache: it is rebuilt (by hashing) when missing or unreadable, written atomically,
best effort (a read-only out dir still plans), and merged by concurrent runners (a lost entry
costs one hash later).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from pathlib import Path

FINGERPRINTS = ".mmgen/fingerprints.json"

#: path -> (size, mtime_ns, sha256)
Fingerprints = dict[str, tuple[int, int, str]]


def load(out_dir: Path) -> Fingerprints:
    try:
        data = json.loads((out_dir / FINGERPRINTS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    found: Fingerprints = {}
    if isinstance(data, dict):
        for path, value in data.items():
            if isinstance(value, list) and len(value) == 3:
                size, mtime, digest = value
                if isinstance(size, int) and isinstance(mtime, int) and isinstance(digest, str):
                    found[str(path)] = (size, mtime, digest)
    return found


def save(out_dir: Path, updates: Fingerprints) -> None:
    """Merge ``updates`` into the out dir's fingerprints (atomic; errors ignored)."""
    if not updates:
        return
    merged = load(out_dir)
    merged.update(updates)
    path = out_dir / FINGERPRINTS
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            tmp.write_text(json.dumps(merged, separators=(",", ":")), encoding="utf-8")
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


def of_file(path: Path, sha256: str) -> tuple[int, int, str] | None:
    """The fingerprint of a file known to hold ``sha256`` (None when it is gone)."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_size, stat.st_mtime_ns, sha256)
